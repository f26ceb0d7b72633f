"""Benchmark: our k-NN and upserts against Redis GEOSEARCH / GEOADD on the same data.

    python -m loadtest.bench.geoindex --drivers 200000 --queries 2000 [--redis-url URL]
    python -m loadtest.bench.geoindex --embedded-only   # no Redis: the embedded part alone

Prints one JSON object. Both sides run through the same client (redis-py asyncio with
hiredis), the same number of concurrent requests and the same positions, in the same
Redis; every figure is a ratio against the baseline measured in the same run: end to end
(queries per second through one Python client process) and inside Redis (CPU time per
query from INFO commandstats, which is what a Redis shard can serve). The upserts and the
k-NN queries of each radius run in --rounds rounds (10), the two sides in turn. Without
--redis-url a redis-server is started on a free port and stopped afterwards; with it,
that Redis is FLUSHED and its statistics reset.

The embedded backend (in-process, same data) is measured against the Redis backend's end
to end rate and against a scipy cKDTree over the same positions as unit vectors, queried
in a loop: bare (tree.query alone), and giving the same answer (ids and haversine metres,
sorted), in ten interleaved rounds. Its k-NN rate is also measured while it takes
updates: --moves-per-query fixes (drivers moved a few metres) between consecutive
queries, the queries alone timed. Its upserts per second and the RSS its 200,000 drivers
add are reported beside.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import orjson
import redis.asyncio as aredis
import uvloop
from scipy.spatial import cKDTree

from geoindex import MemoryGeoIndex, Position, RedisGeoIndex
from geoindex.cells import EARTH_RADIUS_M, haversine_m, position_score, score_latlng
from loadtest.bench.harness import run_on_redis

CENTRE = (40.7306, -73.9866)  # a metro centre; only the shape of the city matters
RADII = (500, 2_000, 5_000)
K = 10
GEO_KEY = "bench:geoadd"
OURS = ("evalsha", "sadd")  # every command RedisGeoIndex sends


def _scatter(rng: np.random.Generator, n: int, sigma_m: float, at: np.ndarray) -> np.ndarray:
    return at + rng.normal(0.0, sigma_m, size=(n, 2))


def _disc(rng: np.random.Generator, n: int, radius_m: float) -> np.ndarray:
    r = radius_m * np.sqrt(rng.random(n))
    a = rng.random(n) * 2 * math.pi
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def _to_latlng(xy: np.ndarray) -> np.ndarray:
    """Metres east/north of the centre to lat/lng (equirectangular is fine at city size)."""
    lat = CENTRE[0] + np.degrees(xy[:, 1] / EARTH_RADIUS_M)
    lng = CENTRE[1] + np.degrees(xy[:, 0] / (EARTH_RADIUS_M * math.cos(math.radians(CENTRE[0]))))
    return np.stack([lat, lng], axis=1)


def city(rng: np.random.Generator, n_drivers: int, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """Drivers: a dense centre, six hotspots (stations, airport), sparse suburbs; mean
    density about 170/km2 within 19 km. Riders: mostly centre and hotspots."""
    hotspots = _disc(rng, 6, 12_000)
    n_core, n_hot = int(n_drivers * 0.4), int(n_drivers * 0.2)
    hot = hotspots[rng.integers(0, 6, n_hot)]
    drivers = np.concatenate(
        [
            _scatter(rng, n_core, 5_000, np.zeros(2)),
            _scatter(rng, n_hot, 800, hot),
            _disc(rng, n_drivers - n_core - n_hot, 25_000),
        ]
    )
    q_core, q_hot = int(n_queries * 0.5), int(n_queries * 0.3)
    queries = np.concatenate(
        [
            _scatter(rng, q_core, 4_000, np.zeros(2)),
            _scatter(rng, q_hot, 600, hotspots[rng.integers(0, 6, q_hot)]),
            _disc(rng, n_queries - q_core - q_hot, 20_000),
        ]
    )
    return _to_latlng(drivers), _to_latlng(queries)


async def _server_us(client: Any, commands: Sequence[str]) -> float:
    """Redis CPU time spent in `commands` since the last CONFIG RESETSTAT, in microseconds."""
    stats = await client.info("commandstats")
    return float(sum(stats.get(f"cmdstat_{c}", {}).get("usec", 0) for c in commands))


async def _measured(
    client: Any,
    commands: Sequence[str],
    jobs: Sequence[Callable[[], Awaitable[Any]]],
    concurrency: int,
) -> tuple[float, float, list[Any]]:
    """(wall seconds, Redis CPU microseconds, results) of running jobs concurrently."""
    await client.config_resetstat()
    elapsed, results = await _run_concurrently(jobs, concurrency)
    return elapsed, await _server_us(client, commands), results


async def _run_concurrently(
    jobs: Sequence[Callable[[], Awaitable[Any]]], concurrency: int
) -> tuple[float, list[Any]]:
    results: list[Any] = [None] * len(jobs)
    next_job = iter(range(len(jobs)))

    async def worker() -> None:
        for i in next_job:
            results[i] = await jobs[i]()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, results


def _unit_vectors(latlng: np.ndarray) -> np.ndarray:
    lat, lng = np.radians(latlng[:, 0]), np.radians(latlng[:, 1])
    return np.stack([np.cos(lat) * np.cos(lng), np.cos(lat) * np.sin(lng), np.sin(lat)], axis=1)


def _brute_force(
    stored: np.ndarray, units: np.ndarray, lat: float, lng: float, k: int, r: float
) -> list[int]:
    """The true k nearest within r, by the index's own distance (geoindex.cells), over
    every driver. Chord length grows with great-circle distance, so a chord bound (with a
    metre to spare for rounding) keeps every driver within r; the rest never reach the
    exact distance, which keeps this affordable at 200k drivers."""
    q = _unit_vectors(np.array([[lat, lng]]))[0]
    chord = np.linalg.norm(units - q, axis=1) * EARTH_RADIUS_M
    near = np.flatnonzero(chord <= 2 * EARTH_RADIUS_M * math.sin(r / (2 * EARTH_RADIUS_M)) + 1)
    exact = [(haversine_m(lat, lng, *stored[i]), int(i)) for i in near.tolist()]
    return [i for d, i in sorted(exact) if d <= r][:k]


def _stored(drivers: np.ndarray) -> np.ndarray:
    """The positions as the index stores them (res-15 cell centres), for the baselines."""
    return np.array([score_latlng(position_score(float(a), float(b))) for a, b in drivers])


def _recall(
    hits: list[Any], stored: np.ndarray, qs: list[tuple[float, float]], r: float, n: int
) -> float:
    """Share of the true k nearest (brute force over every stored position) found, over a
    sample of n queries."""
    units = _unit_vectors(stored)
    found = expected = 0
    for i in range(0, len(qs), max(1, len(qs) // n)):
        truth = {f"drv{j}" for j in _brute_force(stored, units, *qs[i], K, r)}
        found += len(truth & {h.driver_id for h in hits[i]})
        expected += len(truth)
    return found / expected if expected else 1.0


async def bench_redis(
    client: Any, drivers: np.ndarray, stored: np.ndarray, queries: np.ndarray, args: Any
) -> dict[str, Any]:
    now = int(time.time() * 1000)
    ids = [f"drv{i}" for i in range(len(drivers))]
    index = RedisGeoIndex(client, ttl_ms=3_600_000)
    batch = 500

    n = len(drivers)
    fixes = [Position(ids[i], float(lat), float(lng), now) for i, (lat, lng) in enumerate(drivers)]
    upsert_jobs = [partial(index.upsert, fixes[s : s + batch]) for s in range(0, n, batch)]

    async def geoadd(s: int) -> None:
        pipe = client.pipeline(transaction=False)
        for i in range(s, min(s + batch, len(drivers))):
            pipe.geoadd(GEO_KEY, (float(drivers[i, 1]), float(drivers[i, 0]), ids[i]))
        await pipe.execute()

    geoadd_jobs = [partial(geoadd, s) for s in range(0, n, batch)]
    # In rounds, the two sides in turn, as the k-NN's below: run once each (GEOADD's 200,000
    # in about 3 s, ours in 6), GEOADD's rate moved 45,000 to 88,000 a second between
    # quiet runs of the same code and decided the ratio.
    up = np.zeros((2, 2))  # per side: wall seconds, Redis microseconds
    for part in np.array_split(np.arange(len(upsert_jobs)), min(args.rounds, len(upsert_jobs))):
        lo, hi = int(part[0]), int(part[-1]) + 1
        written: list[tuple[Sequence[str], Sequence[Callable[[], Awaitable[Any]]]]]
        written = [(["geoadd"], geoadd_jobs), (OURS, upsert_jobs)]
        for side, (commands, jobs) in enumerate(written):
            s, us, _ = await _measured(client, commands, jobs[lo:hi], args.concurrency)
            up[side] += (s, us)
    (geo_s, geo_us), (ours_s, ours_us) = up.tolist()
    upsert: dict[str, Any] = {"ours_per_s": n / ours_s, "geoadd_per_s": n / geo_s}
    upsert["ratio"] = upsert["ours_per_s"] / upsert["geoadd_per_s"]
    upsert["redis_us_per_op"] = {"ours": ours_us / n, "geoadd": geo_us / n}

    knn = []
    for r in RADII:
        qs = [(float(a), float(b)) for a, b in queries]

        geo_jobs = [
            partial(
                client.geosearch,
                GEO_KEY,
                longitude=lng,
                latitude=lat,
                radius=r,
                unit="m",
                count=K,
                sort="ASC",
            )
            for lat, lng in qs
        ]
        ours_jobs = [partial(index.nearest, lat, lng, K, r) for lat, lng in qs]
        # Ten rounds, the two sides in turn, so that a changing load weighs on both alike
        # (a 5 km GEOSEARCH run lasts a minute, ours a second: run once each, a burst of
        # load in that second decided the ratio).
        sides = ((["geosearch"], geo_jobs), (OURS, ours_jobs))
        totals = np.zeros((2, 3))  # per side: wall seconds, Redis microseconds, client seconds
        hits: list[Any] = []
        for part in np.array_split(np.arange(len(qs)), min(args.rounds, len(qs))):
            lo, hi = int(part[0]), int(part[-1]) + 1
            for side, (commands, jobs) in enumerate(sides):
                cpu = time.process_time()
                s, us, got = await _measured(client, commands, jobs[lo:hi], args.concurrency)
                totals[side] += (s, us, time.process_time() - cpu)
                hits += got if side else []
        (geo_s, geo_us, geo_cpu), (ours_s, ours_us, ours_cpu) = totals.tolist()
        ours_qps, geo_qps = len(qs) / ours_s, len(qs) / geo_s
        knn.append(
            {
                "k": K,
                "radius_m": r,
                "ours_qps": ours_qps,
                "geosearch_qps": geo_qps,
                "ratio": ours_qps / geo_qps,
                "recall": _recall(hits, stored, qs, r, args.recall_sample),
                "redis_us_per_query": {"ours": ours_us / len(qs), "geosearch": geo_us / len(qs)},
                "redis_cpu_ratio": geo_us / ours_us,
                # The client's own CPU (this process), which the load of a shared machine
                # moves less than the rates: what a client process can sustain.
                "client_us_per_query": {
                    "ours": ours_cpu / len(qs) * 1e6,
                    "geosearch": geo_cpu / len(qs) * 1e6,
                },
            }
        )
    return {"knn": knn, "upsert": upsert}


async def bench_memory(
    drivers: np.ndarray,
    stored: np.ndarray,
    queries: np.ndarray,
    redis_qps: dict[int, float],
    args: Any,
) -> dict[str, Any]:
    now = int(time.time() * 1000)
    ids = [f"drv{i}" for i in range(len(drivers))]
    fixes = [Position(ids[i], float(a), float(b), now) for i, (a, b) in enumerate(drivers)]
    rss_before = _rss_bytes()
    index = MemoryGeoIndex(ttl_ms=3_600_000)
    start = time.perf_counter()
    for s in range(0, len(fixes), 1000):
        await index.upsert(fixes[s : s + 1000])
    upsert_s = time.perf_counter() - start
    index_mib = (_rss_bytes() - rss_before) / 2**20
    tree = cKDTree(_unit_vectors(stored))
    points = stored.tolist()
    qs = [(float(a), float(b)) for a, b in queries]
    knn = []
    for r in RADII:
        chord = 2 * math.sin(r / (2 * EARTH_RADIUS_M))
        hits: list[Any] = []
        ours_s = bare_s = same_s = 0.0
        # Ten rounds, the three loops in turn, so that a changing load weighs on all alike.
        for part in np.array_split(np.arange(len(qs)), 10):
            batch = [qs[i] for i in part.tolist()]
            start = time.perf_counter()
            hits += [await index.nearest(lat, lng, K, r) for lat, lng in batch]
            ours_s += time.perf_counter() - start

            start = time.perf_counter()
            for lat, lng in batch:
                tree.query(_unit_vector(lat, lng), K, distance_upper_bound=chord)
            bare_s += time.perf_counter() - start

            start = time.perf_counter()
            for lat, lng in batch:
                _, rows = tree.query(_unit_vector(lat, lng), K, distance_upper_bound=chord)
                sorted(
                    (d, ids[i])
                    for i in rows.tolist()
                    if i < len(points) and (d := haversine_m(lat, lng, *points[i])) <= r
                )
            same_s += time.perf_counter() - start
        ours_qps, bare_qps, same_qps = len(qs) / ours_s, len(qs) / bare_s, len(qs) / same_s
        knn.append(
            {
                "k": K,
                "radius_m": r,
                "ours_qps": ours_qps,
                "kdtree_qps": bare_qps,
                "kdtree_same_answer_qps": same_qps,
                "ratio_vs_kdtree": ours_qps / bare_qps,
                "ratio_vs_kdtree_same_answer": ours_qps / same_qps,
                "recall": _recall(hits, stored, qs, r, args.recall_sample),
            }
        )
        if r in redis_qps:
            knn[-1]["ratio_vs_redis_backend"] = ours_qps / redis_qps[r]
    # Then while taking updates: drivers moved a few metres between queries, each with a
    # newer fix (the index no longer holds `stored`, so no recall here).
    rng = np.random.default_rng(args.seed + 1)
    per_query = args.moves_per_query
    movers = rng.integers(0, len(fixes), len(qs) * per_query).tolist()
    steps = np.degrees(rng.normal(0.0, 20.0, size=(len(movers), 2)) / EARTH_RADIUS_M).tolist()
    for line in knn:
        radius = float(line["radius_m"])
        query_s = 0.0
        for n, (lat, lng) in enumerate(qs):
            now += 1
            moved = []
            for m in range(n * per_query, (n + 1) * per_query):
                f = fixes[movers[m]]
                lat2 = max(-90.0, min(90.0, f.lat + steps[m][0]))
                moved.append(Position(f.driver_id, lat2, f.lng + steps[m][1], now))
            await index.upsert(moved)
            start = time.perf_counter()
            await index.nearest(lat, lng, K, radius)
            query_s += time.perf_counter() - start
        line["ours_qps_taking_updates"] = len(qs) / query_s
        line["ratio_taking_updates_vs_kdtree"] = len(qs) / query_s / line["kdtree_qps"]
    return {"knn": knn, "upsert_per_s": len(fixes) / upsert_s, "index_rss_mib": index_mib}


def _rss_bytes() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _unit_vector(lat: float, lng: float) -> tuple[float, float, float]:
    p, lam = math.radians(lat), math.radians(lng)
    return math.cos(p) * math.cos(lam), math.cos(p) * math.sin(lam), math.sin(p)


async def main_async(args: Any, url: str | None) -> dict[str, Any]:
    """Both parts, or without a Redis `url` the embedded one alone."""
    drivers, queries = city(np.random.default_rng(args.seed), args.drivers, args.queries)
    stored = _stored(drivers)
    redis_part: dict[str, Any] = {}
    if url is not None:
        # No read timeout: a 5 km GEOSEARCH queued behind 19 others on a busy machine can
        # take longer than redis-py's default 5 s, and the bench measures, it does not serve.
        client = aredis.Redis.from_url(
            url, max_connections=args.concurrency + 4, socket_timeout=None
        )
        try:
            await client.flushdb()
            redis_part = await bench_redis(client, drivers, stored, queries, args)
        finally:
            await client.aclose()
    redis_qps = {line["radius_m"]: line["ours_qps"] for line in redis_part.get("knn", [])}
    memory = await bench_memory(drivers, stored, queries, redis_qps, args)
    return {
        "drivers": args.drivers,
        "queries": args.queries,
        "concurrency": args.concurrency,
        **redis_part,
        "memory": memory,
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench.geoindex",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--drivers", type=int, default=200_000)
    p.add_argument("--queries", type=int, default=2_000)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--recall-sample", type=int, default=200, help="queries checked by brute force")
    p.add_argument(
        "--rounds", type=int, default=10, help="Redis upserts and k-NN: rounds of the two sides"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--moves-per-query", type=int, default=10, help="embedded: fixes between two queries"
    )
    p.add_argument("--redis-url", help="a Redis to use (its db is FLUSHED); default: start one")
    p.add_argument("--embedded-only", action="store_true", help="no Redis: the embedded part")
    args = p.parse_args(argv)
    if args.embedded_only:
        result = uvloop.run(main_async(args, None))
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        run_on_redis(args.redis_url, partial(main_async, args))


if __name__ == "__main__":
    main()
