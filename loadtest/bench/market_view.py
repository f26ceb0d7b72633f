"""Benchmark: what one market read (GET /v1/market) costs the instance, against /healthz
read the same way in the same run: CPU and latency with nothing else running.

    python -m loadtest.bench.market_view [--drivers 20000] [--reads 1000] [--redis-url URL]
    python -m loadtest.bench.market_view --profile /tmp/view.prof   # then:
    python -m pstats /tmp/view.prof   # sort cumtime, stats get_market|area_view|redis

With --profile, cProfile runs over the timed reads only (server and client: this
process), not the seeding.

One instance (the production app and runner) on a Redis Cluster (3 masters + 3
replicas), or on the given single Redis (FLUSHED), in this process, and a client in
the same process reading one at a time: --drivers drivers spread over the benchmark
city, riders quoted around its hot spots (so cells have demand and, after the surge
job's rounds, surge), then --reads reads of a 2 km area at the centre (19 cells of
resolution 8, about 1,000 drivers) interleaved with as many reads of /healthz. CPU is this process's
(time.process_time: server and client); a market read's own cost is its CPU less a
/healthz read's, which pays the same HTTP and client. A read answers the area's
snapshot (market.AreaSnapshots), read again behind the reads once a second: so then
--fresh reads of the area as such a refresh makes them (the area view and the switch,
in flight together, each with the market store's copy emptied first), one at a time,
in the same process: their wall time, CPU and Redis's CPU (the masters', INFO cpu) and
command time. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import random
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import aiohttp
import numpy as np
import orjson
import uvloop

from dispatch.domain.geo import LatLng
from dispatch.entrypoints import appkeys
from dispatch.entrypoints.server import start
from dispatch.service_layer.market import ViewCache, area_view, count_ask
from dispatch.service_layer.ports import Outcome
from dispatch.settings import Settings
from geoindex import Position
from loadtest.bench.market_reads import redis_usec
from loadtest.redis_procs import RedisCluster
from loadtest.scenario.city import City
from loadtest.scenario.tokens import mint

CITY = City()
RADIUS_M = 2_000


async def seed(app: Any, drivers: int, riders: int) -> None:
    deps = app[appkeys.RUNTIME].deps
    rng = random.Random(7)
    now = deps.clock.now_ms()
    fixes = [Position(f"d{i}", *CITY.uniform_point(rng), now) for i in range(drivers)]
    for at in range(0, drivers, 1000):
        await deps.index.upsert(fixes[at : at + 1000])
    for i in range(riders):
        asked = LatLng(*CITY.demand_point(rng))
        await count_ask(deps.market, f"r{i}", asked, now, Outcome.QUOTE, product="economy")


def _ms(xs: list[float], q: float) -> float:
    return round(float(np.percentile(xs, q)) * 1000, 3)


async def fresh_reads(app: Any, n: int, ports: list[int]) -> dict[str, Any]:
    """n reads of the area as a snapshot's refresh makes them, one at a time."""
    deps = app[appkeys.RUNTIME].deps
    at, wall, cpu = LatLng(CITY.lat, CITY.lng), [], []
    r0 = redis_usec(ports)
    for _ in range(n):
        market = replace(deps.market, view_cache=ViewCache())  # the store read too
        now = deps.clock.now_ms()
        c0, w0 = time.process_time(), time.perf_counter()
        await asyncio.gather(
            area_view(market, deps.index, at, RADIUS_M, now),
            market.view_cache.enabled(market, now),
        )
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    r1 = redis_usec(ports)
    usec = {k: (u - r0.get(k, (0, 0))[1]) / n for k, (_, u) in r1.items() if k != "info"}
    return {
        "reads": n,
        "wall_ms": {"p50": _ms(wall, 50), "p99": _ms(wall, 99)},
        "cpu_ms_mean": round(statistics.fmean(cpu) * 1000, 3),
        "redis_cpu_ms": round(usec.pop("cpu") / 1000, 3) if ports else None,
        "redis_usec_by_command": {k: round(u, 1) for k, u in usec.items() if u >= 1},
    }


async def run(a: argparse.Namespace, settings: Settings, ports: list[int]) -> dict[str, Any]:
    runner, port = await start(replace(settings, port=0, host="127.0.0.1"))
    try:
        await seed(runner.app, a.drivers, a.riders)
        await asyncio.sleep(a.settle_s)  # the surge job's rounds: some cells surge
        base = f"http://127.0.0.1:{port}"
        market = f"{base}/v1/market?lat={CITY.lat}&lng={CITY.lng}&radius_m={RADIUS_M}"
        hdr = {"Authorization": f"Bearer {mint('ops', 'bench', settings.jwt_secret)}"}
        timed: dict[str, tuple[list[float], list[float]]] = {
            "market": ([], []),
            "healthz": ([], []),
        }
        cells = 0
        prof = cProfile.Profile() if a.profile else None
        async with aiohttp.ClientSession() as s:
            for n in range(a.reads + 20):
                if prof is not None and n == 20:
                    prof.enable()
                for name, url in (("market", market), ("healthz", f"{base}/healthz")):
                    c0, w0 = time.process_time(), time.perf_counter()
                    async with s.get(url, headers=hdr) as r:
                        body = await r.read()
                        assert r.status == 200, body
                    if n >= 20:  # the first reads warm connections and caches up
                        timed[name][0].append(time.process_time() - c0)
                        timed[name][1].append(time.perf_counter() - w0)
                    if name == "market":
                        cells = len(orjson.loads(body)["cells"])
        if prof is not None:
            prof.disable()
            prof.dump_stats(a.profile)
        fresh = await fresh_reads(runner.app, a.fresh, ports) if a.fresh else None
    finally:
        await runner.cleanup()
    (m_cpu, m_wall), (h_cpu, h_wall) = timed["market"], timed["healthz"]
    return {
        "bench": "market_view",
        "backend": "redis" if a.redis_url else "redis_cluster",
        "drivers": a.drivers,
        "riders": a.riders,
        "reads": a.reads,
        "cells_answered": cells,
        "market_cpu_ms_mean": round(statistics.fmean(m_cpu) * 1000, 3),
        "healthz_cpu_ms_mean": round(statistics.fmean(h_cpu) * 1000, 3),
        "market_own_cpu_ms": round((statistics.fmean(m_cpu) - statistics.fmean(h_cpu)) * 1000, 3),
        "market_wall_ms": {"p50": _ms(m_wall, 50), "p90": _ms(m_wall, 90), "p99": _ms(m_wall, 99)},
        "healthz_wall_ms": {"p50": _ms(h_wall, 50), "p90": _ms(h_wall, 90), "p99": _ms(h_wall, 99)},
        # What a snapshot's refresh costs (behind the reads, once a second per area).
        "fresh_area_read": fresh,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.market_view")
    p.add_argument("--drivers", type=int, default=20_000)
    p.add_argument("--riders", type=int, default=2_000)
    p.add_argument("--reads", type=int, default=1_000)
    p.add_argument("--settle-s", type=float, default=5.0)
    p.add_argument("--redis-url")
    p.add_argument("--profile", metavar="PATH", help="cProfile the timed reads into PATH")
    p.add_argument("--fresh", type=int, default=100, help="fresh reads of the area (0: none)")
    a = p.parse_args(argv)
    base = Settings(jwt_secret="bench-" + "x" * 40, driver_ttl_s=3600)
    with ExitStack() as stack:
        if a.redis_url:
            import redis

            redis.Redis.from_url(a.redis_url).flushall()
            settings = replace(base, redis_url=a.redis_url)
            ports: list[int] = []  # another's server: its CPU is not this run's alone
        else:
            cluster = stack.enter_context(RedisCluster(tie_to_parent=True))
            settings = replace(base, redis_cluster_url=cluster.url)
            ports = [n.port for n in cluster.masters()]
        result = uvloop.run(run(a, settings, ports))
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()
