"""The ops stream's bytes per page with 10,000 drivers moving every second, against naive
full JSON snapshots (one object per driver, every second) of the same drivers in the same
run; and what a watching page costs the server.

    python -m loadtest.bench.ops_stream [--drivers 10000] [--seconds 20] [--pages 0,1,4] [--redis]

One instance on the embedded backend (or, with --redis, on a standalone Redis whose CPU is
measured too). A fleet client moves every driver 8-12 m once a
second through POST /v1/locations (1,000 per batch); for each page count in --pages that
many pages follow GET /v1/ops/stream for --seconds while the server's CPU and the batch
posts' latency are measured. Target: at most 200 KB/s per page.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.domain.principals import Principal, Role
from loadtest.bench.harness import Servers, cpu_seconds, machine, median
from loadtest.redis_procs import RedisServer

TARGET_BYTES_PER_S = 200_000
CENTRE = (52.52, 13.405)  # the default watched area
BATCH = 1_000
M_PER_DEG = 111_195.0


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
    delta_bytes: int = 0
    deltas: int = 0


async def follow(session: aiohttp.ClientSession, url: str, token: str, out: Counted) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(url + "/v1/ops/stream", headers=headers) as resp:
        assert resp.status == 200, resp.status
        buffer = b""
        async for chunk in resp.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                size = len(event) + 2
                if event.startswith(b"event: snapshot"):
                    out.snapshot_bytes += size
                elif event.startswith(b"event: delta"):
                    out.delta_bytes += size
                    out.deltas += 1


async def mover(
    session: aiohttp.ClientSession, url: str, token: str, fleet: Fleet, latencies: list[float],
    naive: list[int], stop: asyncio.Event,
) -> None:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def post(body: bytes) -> None:
        started = time.perf_counter()
        async with session.post(url + "/v1/locations", data=body, headers=headers) as resp:
            assert resp.status == 200, resp.status
            await resp.read()
        latencies.append(time.perf_counter() - started)

    while not stop.is_set():
        started = time.monotonic()
        fleet.step()
        await asyncio.gather(*(post(b) for b in fleet.batches(int(time.time() * 1000))))
        naive.append(len(fleet.naive_snapshot()))
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


async def phase(
    session: aiohttp.ClientSession, url: str, tokens: TokenCodec, pages: int, seconds: float,
    pids: dict[str, int], latencies: list[float], naive: list[int],
) -> dict[str, Any]:  # fmt: skip
    counts = [Counted() for _ in range(pages)]
    # One operator per page: one token holds at most max_streams_per_owner streams.
    tokens_ = [tokens.issue(Principal(Role.OPS, f"bench{i}"), 3600) for i in range(pages)]
    tasks = [
        asyncio.create_task(follow(session, url, t, c))
        for t, c in zip(tokens_, counts, strict=True)
    ]
    await asyncio.sleep(2.0)  # every page past its snapshot
    base = [(c.delta_bytes, c.deltas) for c in counts]
    latencies.clear()
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    t0, rounds0 = time.perf_counter(), len(naive)
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - t0
    rounds = len(naive) - rounds0
    cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
    per_page = [(c.delta_bytes - b[0]) / wall for c, b in zip(counts, base, strict=True)]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "pages": pages,
        "bytes_per_s_per_page": round(median(per_page)) if per_page else 0,
        "deltas_per_s_per_page": round(
            median([(c.deltas - b[1]) / wall for c, b in zip(counts, base, strict=True)]), 2
        )
        if counts
        else 0,
        "snapshot_bytes": counts[0].snapshot_bytes if counts else 0,
        "fleet_moves_per_s": round(rounds / wall, 2),  # 1.0: every driver moved each second
        "server_cpu_util": round(cpu["server"] / wall, 3),
        **({"redis_cpu_util": round(cpu["redis"] / wall, 3)} if "redis" in cpu else {}),
        "batch_post_ms_median": round(median(latencies) * 1e3, 1) if latencies else None,
    }


async def run(
    url: str, secret: str, pids: dict[str, int], args: argparse.Namespace
) -> dict[str, Any]:
    tokens = TokenCodec(secret)
    fleet_token = tokens.issue(Principal(Role.FLEET, "bench"), 3600)
    fleet = Fleet(args.drivers, random.Random(args.seed))
    latencies: list[float] = []
    naive: list[int] = []
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        moving = asyncio.create_task(
            mover(session, url, fleet_token, fleet, latencies, naive, stop)
        )
        await asyncio.sleep(3.0)  # every driver placed and moving
        phases = [
            await phase(session, url, tokens, n, args.seconds, pids, latencies, naive)
            for n in args.pages
        ]
        stop.set()
        await moving
    naive_bps = round(median([float(n) for n in naive[3:]]))
    watched = [p for p in phases if p["pages"]]
    ours = median([p["bytes_per_s_per_page"] for p in watched]) if watched else 0
    cpu = {p["pages"]: p["server_cpu_util"] for p in phases}
    most = max(cpu)
    # The first page starts the feed (one look and one encoding a second, shared); each
    # further page costs only its writes.
    feed_cpu = round(cpu[1] - cpu[0], 4) if 0 in cpu and 1 in cpu else None
    extra_page_cpu = round((cpu[most] - cpu[1]) / (most - 1), 4) if 1 in cpu and most > 1 else None
    return {
        "backend": "redis" if args.redis else "embedded",
        "drivers": args.drivers,
        "seconds": args.seconds,
        "phases": phases,
        "stream_bytes_per_s_per_page": ours,
        "naive_snapshot_bytes_per_s_per_page": naive_bps,
        "ratio_naive_to_stream": round(naive_bps / ours, 1) if ours else None,
        "feed_cpu_util": feed_cpu,
        "extra_page_cpu_util": extra_page_cpu,
        "target_bytes_per_s": TARGET_BYTES_PER_S,
        "meets_target": bool(ours) and ours <= TARGET_BYTES_PER_S,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.ops_stream")
    p.add_argument("--drivers", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--pages", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 4])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--redis", action="store_true", help="a standalone Redis, not embedded")
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
