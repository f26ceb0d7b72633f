"""An instance's RSS over thousands of whole ride cycles, with its drivers on WebSockets.

    python -m loadtest.bench.memory_growth [--drivers 40] [--riders 10] [--rides 6000]
        [--every 500] [--trace 0] [--arena-max N] [--trim-s S]

One `dispatch serve` on a redis-server of its own (free ports). The drivers hold a
WebSocket each, get their offers on it and accept there, then arrive, start and complete
over HTTP at once (no driving time: a fast cycle); the riders request rides in a loop,
each waiting for its ride to complete. Every --every rides the instance's VmRSS is read
from /proc; the JSON printed at the end gives RSS per ride for each phase, so a growth
that levels off (caches filling to their bounds) shows apart from a straight line.

Diagnostics, in the launched instance only (this module's `serve`, not the service):
--trace N starts tracemalloc with N frames and, at each phase, writes the top traced
differences since the last phase and gc's object counts by type to the run's dump file;
--arena-max sets MALLOC_ARENA_MAX; --trim-s calls glibc's malloc_trim every S seconds, to
tell memory the allocator keeps (fragmentation) from memory still referenced (a leak).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import functools
import gc
import json
import os
import random
import signal
import sys
import threading
import time
import tracemalloc
import uuid
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import orjson

from loadtest.bench.harness import Servers, machine
from loadtest.redis_procs import RedisServer
from loadtest.scenario.city import City
from loadtest.scenario.tokens import mint

CITY = City()
UNLIMITED = {
    "DISPATCH_MATCH_WINDOW_MS": "0",  # each ride offered in its request, as measured before
    "DISPATCH_DRIVER_RATE_PER_S": "1000000",
    "DISPATCH_DRIVER_RATE_BURST": "1000000",
    "DISPATCH_RIDE_REQUEST_RATE_PER_S": "1000000",
    "DISPATCH_RIDE_REQUEST_RATE_BURST": "1000000",
}


ARRAYS = ("lat", "lng", "cos_lat", "lo", "hi", "region_index")


# --- the instance's side: `python -m loadtest.bench.memory_growth serve` --------------
def _serve(argv: list[str]) -> int:
    from dispatch.entrypoints.cli import main

    frames = int(os.environ.get("MEMGROWTH_TRACE", "0"))
    dump = os.environ.get("MEMGROWTH_DUMP")
    trim_s = float(os.environ.get("MEMGROWTH_TRIM_S", "0"))
    if frames:
        tracemalloc.start(frames)
    last: list[Any] = [None, Counter()]

    def phase(signum: int, frame: FrameType | None) -> None:
        gc.collect()
        types = Counter(type(o).__name__ for o in gc.get_objects())
        out: dict[str, Any] = {"types": dict((types - last[1]).most_common(25))}
        last[1] = types
        # Every functools cache in the process, filled against its bound.
        caches = [o for o in gc.get_objects() if isinstance(o, functools._lru_cache_wrapper)]
        out["lru"] = {
            f"{c.__module__}.{c.__qualname__}": [c.cache_info().currsize, c.cache_info().maxsize]
            for c in caches
            if c.cache_info().currsize > 100
        }
        # The geo index's cached search disks: numpy arrays, mostly outside gc's counts.
        disks = [o for o in gc.get_objects() if type(o).__name__ == "Disk"]
        out["disks_mib"] = round(
            sum(getattr(d, f).nbytes for d in disks for f in d.__slots__ if f in ARRAYS) / 2**20, 1
        )
        if frames:
            snap = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]
            )
            out["traced_kib"] = round(tracemalloc.get_traced_memory()[0] / 1024, 1)
            if last[0] is not None:
                diff = snap.compare_to(last[0], "traceback")[:12]
                out["top"] = [
                    {"kib": round(d.size_diff / 1024, 1), "count": d.count_diff,
                     "where": [str(f) for f in d.traceback.format()[-2 * min(frames, 6):]]}
                    for d in diff
                ]  # fmt: skip
            last[0] = snap
        if dump:
            with open(dump, "ab") as f:
                f.write(orjson.dumps(out) + b"\n")

    signal.signal(signal.SIGUSR2, phase)
    if trim_s:
        trim = ctypes.CDLL("libc.so.6").malloc_trim

        def trimmer() -> None:
            while True:
                time.sleep(trim_s)
                trim(0)

        threading.Thread(target=trimmer, daemon=True).start()
    return main(argv)


# --- the load's side ----------------------------------------------------------------
def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Load:
    def __init__(self, url: str, secret: str, a: argparse.Namespace) -> None:
        self.url, self.secret, self.a = url, secret, a
        self.done: dict[str, asyncio.Future[str]] = {}  # ride id -> its end, for its rider
        self.rides = 0  # completed
        self.outcomes: Counter[str] = Counter()
        self.rng = random.Random(7)

    def _fix(self, seq: int) -> dict[str, Any]:
        lat, lng = CITY.uniform_point(self.rng)
        return {"lat": lat, "lng": lng, "ts": int(time.time() * 1000), "seq": seq}

    async def driver(self, n: int, s: aiohttp.ClientSession, ready: asyncio.Event) -> None:
        driver_id = f"mg{n:05d}"
        auth = {"Authorization": f"Bearer {mint('driver', driver_id, self.secret)}"}
        seq = 0
        async with s.ws_connect(f"{self.url}/v1/drivers/{driver_id}/stream", headers=auth) as ws:

            async def fix() -> None:
                nonlocal seq
                seq += 1
                await ws.send_str(orjson.dumps({"type": "location", **self._fix(seq)}).decode())

            async def keepalive() -> None:
                while True:
                    await asyncio.sleep(5.0)
                    await fix()

            async def drive(ride_id: str) -> None:
                for step in ("arrived", "start", "complete"):
                    async with s.post(f"{self.url}/v1/rides/{ride_id}/{step}", headers=auth) as r:
                        if r.status != 200:
                            self._end(ride_id, f"{step} {r.status}")
                            return
                self._end(ride_id, "completed")
                await fix()  # available again, somewhere else

            await fix()
            ready.set()
            alive = asyncio.create_task(keepalive())
            driving: set[asyncio.Task[None]] = set()
            try:
                async for msg in ws:
                    frame = orjson.loads(msg.data)
                    kind, ride = frame.get("type"), frame.get("ride") or {}
                    if kind == "offer":
                        await ws.send_str(
                            orjson.dumps({"type": "accept", "ride_id": ride["id"]}).decode()
                        )
                    elif kind == "result" and ride.get("status") == "accepted":
                        task = asyncio.create_task(drive(ride["id"]))
                        driving.add(task)
                        task.add_done_callback(driving.discard)
                    elif kind in ("result", "error") and ride.get("status") != "accepted":
                        if ride.get("id"):
                            self._end(ride["id"], f"{kind} {ride.get('status')}")
            finally:
                alive.cancel()

    def _end(self, ride_id: str, outcome: str) -> None:
        fut = self.done.get(ride_id)
        if fut is not None and not fut.done():
            fut.set_result(outcome)

    async def rider(self, n: int, s: aiohttp.ClientSession, until: int) -> None:
        rider_id = f"mg-rider-{n}"
        auth = {"Authorization": f"Bearer {mint('rider', rider_id, self.secret)}"}
        while self.rides < until:
            plat, plng = CITY.demand_point(self.rng)
            dlat, dlng = CITY.uniform_point(self.rng)
            body = {"pickup": {"lat": plat, "lng": plng}, "dropoff": {"lat": dlat, "lng": dlng}}
            headers = {**auth, "Idempotency-Key": uuid.uuid4().hex}
            async with s.post(f"{self.url}/v1/rides", json=body, headers=headers) as r:
                ride = await r.json()
            if r.status not in (200, 201) or ride.get("status") != "offered":
                self.outcomes[f"request {r.status} {ride.get('status') or ride.get('error')}"] += 1
                await asyncio.sleep(0.05)
                continue
            fut = self.done[ride["id"]] = asyncio.get_running_loop().create_future()
            try:
                outcome = await asyncio.wait_for(fut, 30.0)
            except TimeoutError:
                outcome = "timeout"
            del self.done[ride["id"]]
            self.outcomes[outcome] += 1
            if outcome == "completed":
                self.rides += 1


async def run(a: argparse.Namespace, url: str, secret: str, pid: int) -> list[dict[str, Any]]:
    load = Load(url, secret, a)
    samples: list[dict[str, Any]] = []
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:
        readies = [asyncio.Event() for _ in range(a.drivers)]
        drivers = [asyncio.create_task(load.driver(i, s, readies[i])) for i in range(a.drivers)]
        await asyncio.gather(*(r.wait() for r in readies))

        def sample() -> None:
            if a.trace is not None:
                os.kill(pid, signal.SIGUSR2)
            samples.append(
                {"rides": load.rides, "rss_kib": rss_kib(pid), "t_s": round(time.monotonic(), 1)}
            )

        next_at = 0
        riders = [asyncio.create_task(load.rider(i, s, a.rides)) for i in range(a.riders)]
        while not all(r.done() for r in riders):
            if load.rides >= next_at:
                sample()
                next_at += a.every
            await asyncio.sleep(0.2)
        for r in riders:
            r.result()  # raise what a rider raised
        await asyncio.sleep(1.0)
        sample()
        for d in drivers:
            d.cancel()
        await asyncio.gather(*drivers, return_exceptions=True)
    print(json.dumps({"outcomes": dict(load.outcomes)}), file=sys.stderr)
    return samples


def phases(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for a, b in zip(samples, samples[1:], strict=False):
        n = b["rides"] - a["rides"]
        if n <= 0:
            continue
        out.append({
            "rides": f"{a['rides']}-{b['rides']}",
            "rss_mib_end": round(b["rss_kib"] / 1024, 1),
            "kb_per_ride": round((b["rss_kib"] - a["rss_kib"]) * 1.024 / n, 2),
            "rides_per_s": round(n / max(b["t_s"] - a["t_s"], 0.1), 1),
        })  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        raise SystemExit(_serve(argv))
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.memory_growth")
    p.add_argument("--drivers", type=int, default=40)
    p.add_argument("--riders", type=int, default=10)
    p.add_argument("--rides", type=int, default=6000)
    p.add_argument("--every", type=int, default=500)
    p.add_argument("--trace", type=int, metavar="FRAMES", help="tracemalloc in the instance")
    p.add_argument("--arena-max", type=int, help="MALLOC_ARENA_MAX for the instance")
    p.add_argument("--trim-s", type=float, help="malloc_trim(0) in the instance every S s")
    a = p.parse_args(argv)
    with RedisServer(tie_to_parent=True) as redis, Servers() as servers:
        extra = {**UNLIMITED, "DISPATCH_REDIS_URL": redis.url}
        dump = servers.dir / "phases.jsonl"
        if a.trace is not None:
            extra.update(MEMGROWTH_TRACE=str(a.trace), MEMGROWTH_DUMP=str(dump))
        if a.arena_max:
            extra["MALLOC_ARENA_MAX"] = str(a.arena_max)
        if a.trim_s:
            extra["MEMGROWTH_TRIM_S"] = str(a.trim_s)
        from loadtest.instances import DispatchInstance, instance_env
        from loadtest.redis_procs import free_port

        env = {**instance_env(free_port(), "memgrowth", servers.secret), **extra}
        cmd = (sys.executable, "-m", "loadtest.bench.memory_growth", "serve")
        inst = DispatchInstance(env, servers.dir / "memgrowth.log", cmd, tie_to_parent=True)
        servers.instances.append(inst)
        inst.start()
        inst.wait_ready()
        assert inst.proc is not None
        samples = asyncio.run(run(a, inst.url, servers.secret, inst.proc.pid))
        time.sleep(0.5)  # the last phase's dump is written
        result: dict[str, Any] = {
            "bench": "memory_growth",
            "drivers": a.drivers,
            "riders": a.riders,
            "arena_max": a.arena_max,
            "trim_s": a.trim_s,
            "phases": phases(samples),
            "machine": machine(),
        }
        if a.trace is not None and dump.exists():
            result["dump"] = [json.loads(line) for line in dump.read_text().splitlines()]
        print(json.dumps(result))


if __name__ == "__main__":
    main()
