"""Closed-loop load for the scale-out bench, one process; prints one JSON line.

    python -m loadtest.bench.scaleout_load ws --url U --secret S --sockets 200 --window 2
    python -m loadtest.bench.scaleout_load rides --url U --secret S -c 64
    python -m loadtest.bench.scaleout_load fleet --url U --secret S --sockets 2000 --interval 4
    python -m loadtest.bench.scaleout_load index-writes --url REDIS_CLUSTER_URL -c 8
    python -m loadtest.bench.scaleout_load knn --url REDIS_CLUSTER_URL -c 32

Closed loop on purpose: saturation is what is measured, so every socket keeps --window
fixes in flight and every ride worker sends its next request when the last is answered;
the rate the instances sustain is the throughput. Only answers that arrive after
--warmup seconds count. The process reports its own CPU, to show it was not the
bottleneck, and every latency (ms) so the bench can merge several processes' p99; the
result goes to --out as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
from h3.api import basic_int as h3

from loadtest.bench.loadgen import CITY, _fix
from loadtest.scenario.city import EARTH_M
from loadtest.scenario.tokens import mint


class Window:
    """Latencies and statuses of answers inside the measured window."""

    def __init__(self, warmup: float, seconds: float) -> None:
        self.start = time.perf_counter() + warmup
        self.end = self.start + seconds
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.failures: dict[str, int] = {}  # counted whenever they happen, warm-up included
        self.cleanup: dict[str, int] = {}
        self.cpu_s = 0.0

    def open(self) -> bool:
        return time.perf_counter() < self.end

    def add(self, sent: float, status: str) -> None:
        now = time.perf_counter()
        if self.start <= now < self.end:
            self.latencies.append(round((now - sent) * 1e3, 3))
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def fail(self, what: str) -> None:
        self.failures[what] = self.failures.get(what, 0) + 1

    def cleaned(self, status: str) -> None:
        """An answer to clean-up after the window (not measured)."""
        self.cleanup[status] = self.cleanup.get(status, 0) + 1

    async def cpu(self) -> None:
        """This process's CPU over the measured window."""
        await asyncio.sleep(max(0.0, self.start - time.perf_counter()))
        cpu0 = time.process_time()
        await asyncio.sleep(max(0.0, self.end - time.perf_counter()))
        self.cpu_s = time.process_time() - cpu0


async def ws(a: argparse.Namespace, w: Window) -> None:
    async def driver(n: int, s: aiohttp.ClientSession) -> None:
        d = f"{a.prefix}{n}"
        rng = random.Random(n)
        url = f"{a.url.replace('http', 'ws', 1)}/v1/drivers/{d}/stream"
        hdr = {"Authorization": f"Bearer {mint('driver', d, a.secret)}"}
        async with s.ws_connect(url, headers=hdr, max_msg_size=0) as sock:
            sent: dict[int, float] = {}
            free = asyncio.Semaphore(a.window)
            seq = last_ts = 0

            async def reader() -> None:
                async for msg in sock:
                    m = orjson.loads(msg.data)
                    if m.get("type") in ("ack", "error") and m.get("seq") in sent:
                        status = m.get("status", "?") if m["type"] == "ack" else m.get("error")
                        w.add(sent.pop(m["seq"]), str(status))
                        free.release()

            task = asyncio.create_task(reader())
            while w.open() and not task.done():
                try:
                    await asyncio.wait_for(free.acquire(), timeout=10)
                except TimeoutError:
                    w.add(time.perf_counter() - 10, "ack-timeout")
                    break
                seq += 1
                ts = max(int(time.time() * 1000), last_ts + 1)  # newer in ts as well as seq
                last_ts = ts
                sent[seq] = time.perf_counter()
                await sock.send_str(
                    orjson.dumps({"type": "location", **_fix(seq, rng, ts)}).decode()
                )
            task.cancel()

    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:
        await asyncio.gather(w.cpu(), *(driver(n, s) for n in range(a.sockets)))


async def fleet(a: argparse.Namespace, w: Window) -> None:
    """Drivers as phones: each socket sends one fix every --interval s (open loop: an ack
    is timed from when its fix was due), the sockets opened evenly over --warmup s. A fix
    unanswered after an interval, an error frame, a refused or dropped socket: failures."""

    async def driver(n: int, s: aiohttp.ClientSession) -> None:
        await asyncio.sleep(a.warmup * 0.8 * n / a.sockets)
        d = f"{a.prefix}{n}"
        rng = random.Random(n)
        url = f"{a.url.replace('http', 'ws', 1)}/v1/drivers/{d}/stream"
        hdr = {"Authorization": f"Bearer {mint('driver', d, a.secret)}"}
        try:
            async with s.ws_connect(url, headers=hdr, max_msg_size=0) as sock:
                sent: dict[int, float] = {}

                async def reader() -> None:
                    async for msg in sock:
                        m = orjson.loads(msg.data)
                        if m.get("type") == "ack" and m.get("seq") in sent:
                            w.add(sent.pop(m["seq"]), str(m.get("status")))
                        elif m.get("type") == "error":
                            w.fail(f"error:{m.get('error')}")
                        # offers go unanswered: they time out and go to the next driver

                task = asyncio.create_task(reader())
                seq, due = 0, time.perf_counter()
                while w.open() and not task.done():
                    for q, t in list(sent.items()):
                        if due - t >= a.interval:
                            del sent[q]
                            w.fail("ack-timeout")
                    seq += 1
                    sent[seq] = due
                    fix = {"type": "location", **_fix(seq, rng)}
                    await sock.send_str(orjson.dumps(fix).decode())
                    due += a.interval
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                if task.done():
                    w.fail("socket-closed")
                task.cancel()
        except (aiohttp.ClientError, OSError) as e:
            w.fail(type(e).__name__)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        await asyncio.gather(w.cpu(), *(driver(n, s) for n in range(a.sockets)))


async def rides(a: argparse.Namespace, w: Window) -> None:
    counter = iter(range(10**9))
    offered: list[tuple[str, dict[str, str]]] = []  # (ride id, its rider's headers)

    async def worker(n: int, s: aiohttp.ClientSession) -> None:
        rng = random.Random(n)
        while w.open():
            rider = f"{a.prefix}r{next(counter)}"
            lat, lng = CITY.demand_point(rng)
            hdr = {
                "Authorization": f"Bearer {mint('rider', rider, a.secret)}",
                "Content-Type": "application/json",
                "Idempotency-Key": f"{rider}-1",
            }
            body = orjson.dumps({"pickup": {"lat": lat, "lng": lng}})
            t0 = time.perf_counter()
            try:
                async with s.post(f"{a.url}/v1/rides", data=body, headers=hdr) as r:
                    payload = await r.read()
                    status = str(r.status)
                    if r.status == 201:
                        ride = orjson.loads(payload)
                        status = str(ride.get("status", "?"))
                        if status == "offered":
                            offered.append((ride["id"], hdr))
            except aiohttp.ClientError as e:
                status = type(e).__name__
            w.add(t0, status)

    async def cancel(n: int, s: aiohttp.ClientSession) -> None:
        while offered:
            ride_id, hdr = offered.pop()
            try:
                async with s.post(f"{a.url}/v1/rides/{ride_id}/cancel", headers=hdr) as r:
                    w.cleaned(str(r.status))
            except aiohttp.ClientError as e:
                w.cleaned(type(e).__name__)

    conn = aiohttp.TCPConnector(limit=a.concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:
        await asyncio.gather(w.cpu(), *(worker(n, s) for n in range(a.concurrency)))
        # The window is over: the riders cancel what was offered, so the drivers the
        # rides reserved go back and the next step's rides find the same fleet (each
        # step reserved thousands of the seeded drivers, and every later step's searches
        # reached further for free ones: a ride's CPU rose round by round).
        await asyncio.gather(*(cancel(n, s) for n in range(a.concurrency)))


# The data tier's area: a 150 km square holds about 90 regions at the default resolution
# 5, so the regions' hash slots spread over every master (one city centre would sit in
# one or two regions, one master, and measure that master alone).
BOX_CENTRE = (52.52, 13.405)
BOX_HALF_M = 75_000.0


def box_point(rng: random.Random) -> tuple[float, float]:
    lat = BOX_CENTRE[0] + math.degrees(rng.uniform(-BOX_HALF_M, BOX_HALF_M) / EARTH_M)
    east = rng.uniform(-BOX_HALF_M, BOX_HALF_M)
    return lat, BOX_CENTRE[1] + math.degrees(east / (EARTH_M * math.cos(math.radians(lat))))


def cell_point(rng: random.Random, cells: list[int]) -> tuple[float, float]:
    """A point drawn evenly over the given H3 cells (--cells: a dense city instead of the
    box), by rejection from a circle around a cell's centre."""
    cell = rng.choice(cells)
    lat0, lng0 = h3.cell_to_latlng(cell)
    reach = 1.2 * h3.average_hexagon_edge_length(h3.get_resolution(cell), "m")
    while True:
        north, east = rng.uniform(-reach, reach), rng.uniform(-reach, reach)
        lat = lat0 + math.degrees(north / EARTH_M)
        lng = lng0 + math.degrees(east / (EARTH_M * math.cos(math.radians(lat))))
        if h3.latlng_to_cell(lat, lng, h3.get_resolution(cell)) == cell:
            return lat, lng


def point_source(a: argparse.Namespace) -> Callable[[random.Random], tuple[float, float]]:
    if not a.cells:
        return box_point
    cells = [int(c, 16) for c in a.cells.split(",")]
    return lambda rng: cell_point(rng, cells)


def homes(a: argparse.Namespace) -> list[tuple[float, float]]:
    """Where seed-index puts each of the --drivers drivers (the same draws, in order)."""
    rng, point = random.Random(0), point_source(a)
    return [point(rng) for _ in range(a.drivers)]


def near_point(
    rng: random.Random, home: tuple[float, float], reach_m: float, cells: frozenset[int]
) -> tuple[float, float]:
    """A point drawn evenly over the disk of reach_m around home, inside `cells` (H3
    cells of one resolution; none: anywhere)."""
    lat0, lng0 = home
    res = h3.get_resolution(next(iter(cells))) if cells else 0
    while True:
        north, east = rng.uniform(-reach_m, reach_m), rng.uniform(-reach_m, reach_m)
        if north * north + east * east > reach_m * reach_m:
            continue
        lat = lat0 + math.degrees(north / EARTH_M)
        lng = lng0 + math.degrees(east / (EARTH_M * math.cos(math.radians(lat0))))
        if not cells or h3.latlng_to_cell(lat, lng, res) in cells:
            return lat, lng


async def index(a: argparse.Namespace, w: Window) -> None:
    """Index writes (batches of --batch fixes of --drivers drivers) or k-NN queries, on the
    Redis Cluster at --url directly: the data tier alone, no service in between."""
    from dispatch.adapters.redis_client import connect
    from geoindex import Position, RedisGeoIndex, SearchConfig

    # A master held to its quota answers a node's batch late, not wrongly: the service's
    # 2 s socket timeout would end the run on a throttled master instead of measuring it.
    client = connect(a.url, cluster=True, timeout_s=10.0)
    idx = RedisGeoIndex(client, ttl_ms=3_600_000, config=SearchConfig(region_res=a.region_res))
    point = point_source(a)
    # --move-m: each fix a point within that many metres of the driver's home (where
    # seed-index put it), so two fixes of a driver lie at most twice that apart; 0: a
    # point anywhere (a driver crossing the whole city between two fixes).
    home = homes(a) if a.mode == "index-writes" and a.move_m > 0 else []
    cells = frozenset(int(c, 16) for c in a.cells.split(",")) if a.cells else frozenset()

    def fix(rng: random.Random, driver: int) -> tuple[float, float]:
        return near_point(rng, home[driver], a.move_m, cells) if home else point(rng)

    async def writer(n: int) -> None:
        # Drivers and points drawn afresh in every process and step: seeded draws would
        # repeat across the load processes and the bench's steps, sending a driver where
        # an earlier fix (or the seeding) already put it.
        rng = random.Random()
        while w.open():
            now = int(time.time() * 1000)
            drivers = rng.sample(range(a.drivers), a.batch)
            batch = [Position(f"{a.prefix}{d}", *fix(rng, d), now) for d in drivers]
            t0 = time.perf_counter()
            await idx.upsert(batch)
            for _ in batch:  # one latency per fix: the batch's
                w.add(t0, "upsert")

    async def searcher(n: int) -> None:
        rng = random.Random(n)
        while w.open():
            lat, lng = point(rng)
            t0 = time.perf_counter()
            found = await idx.nearest(lat, lng, a.k, a.radius_m)
            w.add(t0, "found" if found else "none")

    job = writer if a.mode == "index-writes" else searcher
    try:
        await asyncio.gather(w.cpu(), *(job(n) for n in range(a.concurrency)))
    finally:
        await client.aclose()


async def seed_index(a: argparse.Namespace) -> None:
    """--drivers drivers, once, as fast as the cluster takes them (before any quota)."""
    from dispatch.adapters.redis_client import connect
    from geoindex import Position, RedisGeoIndex, SearchConfig

    client = connect(a.url, cluster=True)
    idx = RedisGeoIndex(client, ttl_ms=3_600_000, config=SearchConfig(region_res=a.region_res))
    now = int(time.time() * 1000)
    at = homes(a)
    try:
        for s in range(0, a.drivers, 500):
            await idx.upsert(
                [Position(f"{a.prefix}{i}", *at[i], now) for i in range(s, min(s + 500, a.drivers))]
            )
    finally:
        await client.aclose()


MODES = {"ws": ws, "fleet": fleet, "rides": rides, "index-writes": index, "knn": index}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.scaleout_load")
    p.add_argument("mode", choices=[*MODES, "seed-index"])
    p.add_argument("--url", required=True)
    p.add_argument("--secret", default="", help="ws, rides: the instances' JWT secret")
    p.add_argument("--prefix", default="so")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--sockets", type=int, default=200, help="ws: driver sockets")
    p.add_argument("--window", type=int, default=2, help="ws: fixes in flight per socket")
    p.add_argument("--interval", type=float, default=4.0, help="fleet: seconds between fixes")
    p.add_argument("-c", "--concurrency", type=int, default=64, help="workers")
    p.add_argument("--drivers", type=int, default=100_000, help="index modes, seed-index")
    p.add_argument("--batch", type=int, default=50, help="index-writes: fixes per upsert")
    p.add_argument("--move-m", type=float, default=0.0, help="index-writes: each fix within "
                   "this of the driver's seeded home; 0: anywhere")  # fmt: skip
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--region-res", type=int, default=5, help="index modes, seed-index")
    p.add_argument("--out", type=Path, help="where the result goes (JSON)")
    p.add_argument("--radius-m", type=float, default=2_000.0)
    p.add_argument("--cells", default="", help="index modes: points in these H3 cells (hex, "
                   "comma-separated) instead of the 150 km box")  # fmt: skip
    a = p.parse_args(argv)
    uvloop.install()
    if a.mode == "seed-index":
        asyncio.run(seed_index(a))
        print(json.dumps({"mode": a.mode, "drivers": a.drivers}), flush=True)
        return
    w = Window(a.warmup, a.seconds)
    asyncio.run(MODES[a.mode](a, w))
    out: dict[str, Any] = {
        "mode": a.mode,
        "seconds": a.seconds,
        "cpu_s": round(w.cpu_s, 3),
        "statuses": w.statuses,
        "failures": w.failures,
        "latencies_ms": w.latencies,
        **({"cleanup": w.cleanup} if w.cleanup else {}),
    }
    # To a file: the bench merges the latencies, and a pipe left non-blocking by the
    # event loop can cut a long line short.
    a.out.write_text(json.dumps(out))


if __name__ == "__main__":
    main()
