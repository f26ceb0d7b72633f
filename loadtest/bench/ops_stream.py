"""The ops stream's bytes per page with 10,000 drivers moving every second, against naive
full JSON snapshots (one object per driver, every second) of the same drivers in the same
run; and what a watching page costs the server.

    python -m loadtest.bench.ops_stream [--drivers 10000] [--seconds 20] [--pages 0,1,4] [--redis]
        [--vehicles]

One instance on the embedded backend (or, with --redis, on a standalone Redis whose CPU is
measured too). A fleet client moves every driver 8-12 m once a second through
POST /v1/locations (1,000 per batch, the batches spread over the second); for each page
count in --pages that many pages follow GET /v1/ops/stream for --seconds while the
server's CPU, the batch posts' latency (median, p99) and the fixes taken a second are
measured. With --vehicles the drivers first get vehicles of a mixed fleet (VEHICLE_MIX,
through the fleet's vehicle call), so the stream carries every product's market cells as
a city with several products would. Target: at most 200 KB/s per page. With 0 pages
first (and again last, for the baseline's own drift) it also reports the fewest pages at
which ingest is 10 % slower (p99 up or rate down) than with none, and from CPU time how
many pages it takes for the ops work to use 10 % of a core (a saturated instance's ingest
10 % down): --pages 0,1,2,4,8,16,32,64,0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import orjson

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.domain.principals import Principal, Role
from loadtest.bench.harness import Servers, cpu_seconds, machine, median
from loadtest.redis_procs import RedisServer

TARGET_BYTES_PER_S = 200_000
CENTRE = (52.52, 13.405)  # the default watched area
BATCH = 1_000
M_PER_DEG = 111_195.0
# The built-in catalog's products in a plausible fleet: (share, seats, flags, products).
VEHICLE_MIX: tuple[tuple[float, int, list[str], list[str]], ...] = (
    (0.55, 4, [], ["economy"]),
    (0.20, 4, ["comfort"], ["comfort", "economy"]),
    (0.15, 6, [], ["economy", "xl"]),
    (0.10, 4, ["accessible"], ["economy", "wav"]),
)


@dataclass
class Fleet:
    """Drivers on straight lines through the city, turning now and then."""

    n: int
    rng: random.Random
    lat: list[float] = field(default_factory=list)
    lng: list[float] = field(default_factory=list)
    heading: list[float] = field(default_factory=list)
    seq: int = 0

    def __post_init__(self) -> None:
        for _ in range(self.n):
            self.lat.append(CENTRE[0] + self.rng.uniform(-0.05, 0.05))
            self.lng.append(CENTRE[1] + self.rng.uniform(-0.08, 0.08))
            self.heading.append(self.rng.uniform(0, 2 * math.pi))

    def step(self) -> None:
        cos_lat = math.cos(math.radians(CENTRE[0]))
        for i in range(self.n):
            if self.rng.random() < 0.05:
                self.heading[i] = self.rng.uniform(0, 2 * math.pi)
            metres = self.rng.uniform(8, 12)
            self.lat[i] += metres * math.cos(self.heading[i]) / M_PER_DEG
            self.lng[i] += metres * math.sin(self.heading[i]) / (M_PER_DEG * cos_lat)
        self.seq += 1

    def batches(self, ts: int) -> list[bytes]:
        return [
            orjson.dumps(
                {
                    "updates": [
                        {
                            "driver_id": f"d{i:05d}",
                            "lat": self.lat[i],
                            "lng": self.lng[i],
                            "ts": ts,
                            "seq": self.seq,
                        }
                        for i in range(start, min(start + BATCH, self.n))
                    ]
                }
            )  # fmt: skip
            for start in range(0, self.n, BATCH)
        ]

    def naive_snapshot(self) -> bytes:
        """What a page would get every second without deltas: every driver, in full."""
        return orjson.dumps(
            [
                {"id": f"d{i:05d}", "lat": self.lat[i], "lng": self.lng[i], "status": "available"}
                for i in range(self.n)
            ]
        )


@dataclass
class Counted:
    snapshot_bytes: int = 0
    delta_bytes: int = 0  # everything after the snapshot (deltas and keep-alives)
    deltas: int = 0


async def follow(
    session: aiohttp.ClientSession, url: str, token: str, out: Counted, ready: asyncio.Event
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(url + "/v1/ops/stream", headers=headers) as resp:
        assert resp.status == 200, resp.status
        buffer = b""
        async for chunk in resp.content.iter_any():
            buffer += chunk
            if b"\n\n" in buffer:
                out.snapshot_bytes = buffer.index(b"\n\n") + 2
                out.delta_bytes = len(buffer) - out.snapshot_bytes
                break
        ready.set()
        # Counted, not parsed: the reader must stay cheap beside the fleet.
        async for chunk in resp.content.iter_any():
            out.delta_bytes += len(chunk)
            out.deltas += chunk.count(b"event: delta")


async def _read_pages(url: str, tokens: list[str], seconds: float, said: Any) -> None:
    counts = [Counted() for _ in tokens]
    readies = [asyncio.Event() for _ in tokens]
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        tasks = [
            asyncio.create_task(follow(session, url, t, c, r))
            for t, c, r in zip(tokens, counts, readies, strict=True)
        ]
        await asyncio.gather(*(r.wait() for r in readies))  # every page past its snapshot
        said.put("ready")
        base = [(c.delta_bytes, c.deltas) for c in counts]
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        wall = time.perf_counter() - t0
        said.put(
            {
                "bytes_per_s": [
                    (c.delta_bytes - b[0]) / wall for c, b in zip(counts, base, strict=True)
                ],
                "deltas_per_s": [
                    (c.deltas - b[1]) / wall for c, b in zip(counts, base, strict=True)
                ],
                "snapshot_bytes": counts[0].snapshot_bytes,
            }
        )
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def read_pages(url: str, tokens: list[str], seconds: float, said: Any) -> None:
    """The pages, in a process of their own: reading 64 streams must not slow the fleet's
    posts, whose latency is what is measured."""
    asyncio.run(_read_pages(url, tokens, seconds, said))


@dataclass
class Ingest:
    """The fleet's posts as the server answered them, since the last reset."""

    latencies: list[float] = field(default_factory=list)
    fixes: int = 0  # positions in batches answered 200

    def reset(self) -> None:
        self.latencies.clear()
        self.fixes = 0


async def mover(
    session: aiohttp.ClientSession, url: str, token: str, fleet: Fleet, ingest: Ingest,
    naive: list[int], stop: asyncio.Event,
) -> None:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def post(body: bytes, n: int) -> None:
        started = time.perf_counter()
        async with session.post(url + "/v1/locations", data=body, headers=headers) as resp:
            assert resp.status == 200, resp.status
            await resp.read()
        ingest.latencies.append(time.perf_counter() - started)
        ingest.fixes += n

    while not stop.is_set():
        started = time.monotonic()
        fleet.step()
        bodies = fleet.batches(int(time.time() * 1000))
        # Spread over the second, as drivers report at their own times: every batch has
        # the same chance to meet whatever else holds the server's event loop.
        posts = []
        for i, body in enumerate(bodies):
            await asyncio.sleep(max(0.0, started + i / len(bodies) - time.monotonic()))
            n = min(BATCH, fleet.n - i * BATCH)
            posts.append(asyncio.create_task(post(body, n)))
        await asyncio.gather(*posts)
        naive.append(len(fleet.naive_snapshot()))
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


def quantile(xs: list[float], q: float) -> float:
    """Nearest rank."""
    ranked = sorted(xs)
    return ranked[max(0, math.ceil(q * len(ranked)) - 1)]


async def phase(
    session: aiohttp.ClientSession, url: str, tokens: TokenCodec, pages: int, seconds: float,
    pids: dict[str, int], ingest: Ingest, naive: list[int],
) -> dict[str, Any]:  # fmt: skip
    # One operator per page: one token holds at most max_streams_per_owner streams.
    tokens_ = [tokens.issue(Principal(Role.OPS, f"bench{i}"), 3600) for i in range(pages)]
    ctx = multiprocessing.get_context("spawn")
    said = ctx.Queue()
    readers = ctx.Process(target=read_pages, args=(url, tokens_, seconds, said), daemon=True)
    if pages:
        readers.start()
        assert await asyncio.to_thread(said.get, True, 120) == "ready"
    else:
        await asyncio.sleep(2.0)
    ingest.reset()
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    t0, rounds0 = time.perf_counter(), len(naive)
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - t0
    rounds = len(naive) - rounds0
    latencies = list(ingest.latencies)
    cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
    read: dict[str, Any] = {"bytes_per_s": [], "deltas_per_s": [], "snapshot_bytes": 0}
    if pages:
        read = await asyncio.to_thread(said.get, True, 120)
        await asyncio.to_thread(readers.join, 30)
    return {
        "pages": pages,
        "bytes_per_s_per_page": round(median(read["bytes_per_s"])) if pages else 0,
        "deltas_per_s_per_page": round(median(read["deltas_per_s"]), 2) if pages else 0,
        "snapshot_bytes": read["snapshot_bytes"],
        "fleet_moves_per_s": round(rounds / wall, 2),  # 1.0: every driver moved each second
        "server_cpu_util": round(cpu["server"] / wall, 3),
        **({"redis_cpu_util": round(cpu["redis"] / wall, 3)} if "redis" in cpu else {}),
        "ingest_fixes_per_s": round(ingest.fixes / wall),
        "batch_post_ms_median": round(median(latencies) * 1e3, 1),
        "batch_post_ms_p99": round(quantile(latencies, 0.99) * 1e3, 1),
        "batch_posts": len(latencies),
    }


async def give_vehicles(session: aiohttp.ClientSession, url: str, token: str, n: int) -> None:
    """Each driver a vehicle of VEHICLE_MIX (applied from its first fix)."""
    headers = {"Authorization": f"Bearer {token}"}
    bounds = np.cumsum([share for share, *_ in VEHICLE_MIX]) * n
    gate = asyncio.Semaphore(32)

    async def put(i: int) -> None:
        _, seats, flags, products = VEHICLE_MIX[int(np.searchsorted(bounds, i, "right"))]
        body = {"seats": seats, "flags": flags, "products": products}
        async with (
            gate,
            session.put(
                f"{url}/v1/fleet/drivers/d{i:05d}/vehicle", json=body, headers=headers
            ) as resp,
        ):
            assert resp.status == 200, (resp.status, await resp.text())

    await asyncio.gather(*(put(i) for i in range(n)))


async def run(
    url: str, secret: str, pids: dict[str, int], args: argparse.Namespace
) -> dict[str, Any]:
    tokens = TokenCodec(secret)
    fleet_token = tokens.issue(Principal(Role.FLEET, "bench"), 3600)
    fleet = Fleet(args.drivers, random.Random(args.seed))
    ingest = Ingest()
    naive: list[int] = []
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        if args.vehicles:
            await give_vehicles(session, url, fleet_token, fleet.n)
        moving = asyncio.create_task(mover(session, url, fleet_token, fleet, ingest, naive, stop))
        await asyncio.sleep(3.0)  # every driver placed and moving
        phases = [
            await phase(session, url, tokens, n, args.seconds, pids, ingest, naive)
            for n in args.pages
        ]
        stop.set()
        await moving
    naive_bps = round(median([float(n) for n in naive[3:]]))
    watched = [p for p in phases if p["pages"]]
    ours = median([p["bytes_per_s_per_page"] for p in watched]) if watched else 0
    return {
        "backend": "redis" if args.redis else "embedded",
        "drivers": args.drivers,
        "vehicles": "mixed" if args.vehicles else "default product",
        "seconds": args.seconds,
        "phases": phases,
        "stream_bytes_per_s_per_page": ours,
        "naive_snapshot_bytes_per_s_per_page": naive_bps,
        "ratio_naive_to_stream": round(naive_bps / ours, 1) if ours else None,
        **ingest_slowdown(phases),
        "target_bytes_per_s": TARGET_BYTES_PER_S,
        "meets_target": bool(ours) and ours <= TARGET_BYTES_PER_S,
        "machine": machine(),
    }


def ingest_slowdown(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Each phase's ingest against the first phase (0 pages) of the same run: the batch
    posts' p99 and the fixes taken a second, as ratios; from later 0-page phases, how far
    the baseline itself moved; and the fewest pages at which either is 10 % worse, given
    only when the baseline held within 10 % (baseline_steady)."""
    if not phases or phases[0]["pages"] != 0:
        return {}
    base = phases[0]

    def ratios(p: dict[str, Any]) -> dict[str, Any]:
        return {
            "pages": p["pages"],
            "p99_ratio": round(p["batch_post_ms_p99"] / base["batch_post_ms_p99"], 2),
            "fixes_ratio": round(p["ingest_fixes_per_s"] / base["ingest_fixes_per_s"], 3),
        }

    rows = [ratios(p) for p in phases[1:]]
    # Where ingest would stand on a saturated instance: its loop has one core, so ops
    # work taking 10 % of it leaves ingest 10 % less. That work is a phase's server CPU
    # less what its fixes cost at the 0-page phase's CPU per fix (a fleet slowed by a busy
    # machine posts fewer): the feed, then each page's writes. CPU time, which a busy
    # machine blurs far less than latency.
    per_fix = base["server_cpu_util"] / base["ingest_fixes_per_s"]
    ops_cpu = {
        p["pages"]: p["server_cpu_util"] - per_fix * p["ingest_fixes_per_s"] for p in phases[1:]
    }
    most = max(ops_cpu, default=0)
    per_page = (ops_cpu[most] - ops_cpu[1]) / (most - 1) if 1 in ops_cpu and most > 1 else None
    worse = [
        r["pages"] for r in rows if r["pages"] and (r["p99_ratio"] > 1.1 or r["fixes_ratio"] < 0.9)
    ]
    # A verdict only where the 0-page phases agree within 10 % themselves: past that the
    # machine, not the pages, moves the figures.
    again = [r for r in rows if not r["pages"]]
    steady = all(0.9 <= r["p99_ratio"] <= 1.1 and r["fixes_ratio"] >= 0.9 for r in again)
    return {
        "ingest_against_0_pages": [r for r in rows if r["pages"]],
        "ingest_0_pages_again": again,
        "baseline_steady": steady if again else None,
        "ingest_10pct_slower_at_pages": (min(worse) if worse else None) if steady else None,
        "ingest_cpu_ms_per_1000_fixes": round(per_fix * 1e6, 2),
        "ops_cpu_util": {n: round(c, 3) for n, c in ops_cpu.items() if n},
        "feed_cpu_util": round(ops_cpu[1], 3) if 1 in ops_cpu else None,
        "extra_page_cpu_util": round(per_page, 5) if per_page is not None else None,
        "pages_until_ops_take_10pct_of_a_core": (
            # 1: the feed alone, which the first page starts, already takes that much.
            max(1, round(1 + (0.1 - ops_cpu[1]) / per_page)) if per_page and per_page > 0 else None
        ),
        "pages_tried": sorted({p["pages"] for p in phases}),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.ops_stream")
    p.add_argument("--drivers", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--pages", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 4])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--redis", action="store_true", help="a standalone Redis, not embedded")
    p.add_argument("--vehicles", action="store_true", help="a mixed fleet (VEHICLE_MIX)")
    args = p.parse_args(argv)
    with contextlib.ExitStack() as stack:
        servers = stack.enter_context(Servers())
        backend, pids = {}, {}
        if args.redis:
            redis = stack.enter_context(RedisServer(tie_to_parent=True))
            backend = {"DISPATCH_REDIS_URL": redis.url}
            assert redis.node.proc is not None
            pids["redis"] = redis.node.proc.pid
        inst = servers.dispatch("ops-bench", backend)
        assert inst.proc is not None
        pids["server"] = inst.proc.pid
        result = asyncio.run(run(inst.url, servers.secret, pids, args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
