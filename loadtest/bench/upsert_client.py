"""Upserts through the Redis edge's own pipelining against redis-py's path and pipelined
GEOADD, in the same run: the upsert part of loadtest.bench.geoindex, with client CPU.

    python -m loadtest.bench.upsert_client [--drivers 200000] [--rounds 2]

One redis-server (started here), the geoindex bench's city, batches of 500 and 20 batches
in flight. Each round upserts every driver anew (fresh ids) then moves each once, through
a RedisGeoIndex whose edge pipelines (the default) and through one with
GEOINDEX_REDIS_PIPELINED=0 (redis-py's path), in turn, and GEOADDs the same positions in
a redis-py pipeline. Prints JSON: rates, this process's CPU and Redis's CPU (INFO cpu)
per upsert, and the ratio to GEOADD (geoindex bench target: >= 0.5).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import redis.asyncio as aredis

from geoindex import Position, RedisGeoIndex
from loadtest.bench.geoindex import city
from loadtest.bench.harness import machine, median
from loadtest.redis_procs import RedisServer

BATCH, IN_FLIGHT = 500, 20


async def _timed(client: Any, jobs: Sequence[Callable[[], Awaitable[Any]]]) -> dict[str, float]:
    """Wall seconds, this process's CPU seconds and Redis's CPU seconds of running jobs."""

    async def redis_cpu() -> float:
        info = await client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    todo = iter(jobs)

    async def worker() -> None:
        for job in todo:
            await job()

    r0, c0, t0 = await redis_cpu(), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    t1, c1, r1 = time.perf_counter(), time.process_time(), await redis_cpu()
    return {"wall": t1 - t0, "client": c1 - c0, "redis": r1 - r0}


def _per_op(t: dict[str, float], n: int) -> dict[str, float]:
    return {
        "per_s": round(n / t["wall"]),
        "client_us": round(t["client"] / n * 1e6, 1),
        "redis_us": round(t["redis"] / n * 1e6, 1),
    }


def _index(client: Any, pipelined: bool) -> RedisGeoIndex:
    os.environ["GEOINDEX_REDIS_PIPELINED"] = "1" if pipelined else "0"  # read on creation
    try:
        return RedisGeoIndex(client, ttl_ms=3_600_000)
    finally:
        del os.environ["GEOINDEX_REDIS_PIPELINED"]


async def run(url: str, drivers: int, rounds: int) -> dict[str, Any]:
    latlng, _ = city(np.random.default_rng(1), drivers, 1)
    client = aredis.Redis.from_url(url, max_connections=IN_FLIGHT + 4, socket_timeout=None)
    sides = {"pipelined": _index(client, True), "redis_py": _index(client, False)}
    now = int(time.time() * 1000)
    out: dict[str, list[dict[str, Any]]] = {"geoadd": []}
    for name in sides:
        out[name] = []
        out[f"{name}_move"] = []
    try:
        for r in range(rounds):

            async def geoadd(s: int, r: int = r) -> None:
                pipe = client.pipeline(transaction=False)
                for i in range(s, min(s + BATCH, drivers)):
                    lat, lng = float(latlng[i, 0]), float(latlng[i, 1])
                    pipe.geoadd(f"bench:geoadd{r}", (lng, lat, f"d{i}"))
                await pipe.execute()

            jobs: list[Callable[[], Awaitable[Any]]]
            jobs = [partial(geoadd, s) for s in range(0, drivers, BATCH)]
            out["geoadd"].append(_per_op(await _timed(client, jobs), drivers))
            for name, index in sides.items():
                ids = [f"{name}{r}-{i}" for i in range(drivers)]
                for step, (ts, dlat) in (("", (now, 0.0)), ("_move", (now + 1000, 0.0003))):
                    fixes = [
                        Position(ids[i], float(a) + dlat, float(b), ts)
                        for i, (a, b) in enumerate(latlng)
                    ]
                    jobs = [
                        partial(index.upsert, fixes[s : s + BATCH])
                        for s in range(0, drivers, BATCH)
                    ]
                    out[name + step].append(_per_op(await _timed(client, jobs), drivers))
    finally:
        await client.aclose()
    rates = {k: median([x["per_s"] for x in v]) for k, v in out.items()}
    return {
        "bench": "upserts_edge_pipelined_vs_redis_py",
        "machine": machine(),
        "load": f"{drivers} drivers, batches of {BATCH}, {IN_FLIGHT} in flight, {rounds} rounds",
        "per_s_median": rates,
        "ratio_to_geoadd": {k: round(v / rates["geoadd"], 3) for k, v in rates.items()},
        "client_us_per_upsert_median": {
            k: median([x["client_us"] for x in v]) for k, v in out.items()
        },
        "redis_us_per_upsert_median": {
            k: median([x["redis_us"] for x in v]) for k, v in out.items()
        },
        "rounds": out,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.upsert_client")
    p.add_argument("--drivers", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args(argv)
    with RedisServer(tie_to_parent=True) as server:
        print(json.dumps(asyncio.run(run(server.url, a.drivers, a.rounds)), indent=1))


if __name__ == "__main__":
    main()
