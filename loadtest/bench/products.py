"""Benchmark: k-NN for one product against the all-drivers query and against GEOSEARCH
with client-side filtering, and upserts of drivers serving 1, 2 and 3 products.

    python -m loadtest.bench.products --drivers 200000 --queries 1000 [--redis-url URL]

Prints one JSON object; every figure is a ratio against a baseline measured in the same
run, on the same Redis and data (the city of loadtest/bench/geoindex.py):

- knn: at 500 m, 2 km and 5 km, k = 10, a rare product (5 % of drivers, who also serve
  economy) against the query over all drivers, and against what a team on Redis GEO
  would write: GEOSEARCH over an all-drivers key, nearest first, COUNT 20 k, filtered to
  the product in the client (from a driver -> products map the client holds: no round
  trip for it, the baseline's most favourable form), asked again with twice the COUNT
  while it finds fewer than k and the radius may hold more. Recall of both product
  searches against brute force over the product's drivers.
- upsert: a second fix for every driver (each one moves), with every driver serving 1, 2
  or 3 products, and with none (the all-drivers set alone, as before products): updates
  per second and Redis CPU per update, against the single-product case.

End to end (queries per second through one Python client process) and inside Redis (CPU
time per call from INFO commandstats). The cases compared are run interleaved, in rounds
of a tenth of their calls each (the order turning every round), so that a machine whose
load changes during the run weighs on all of them alike; the GEOSEARCH baseline, about
100 times slower at 5 km, runs --baseline-queries of the queries. Without --redis-url a
redis-server is started on a free port and stopped afterwards; with it, that Redis is
FLUSHED.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import redis.asyncio as aredis

from geoindex import Position, RedisGeoIndex
from geoindex.cells import position_score, score_latlng
from loadtest.bench.geoindex import OURS, RADII, _brute_force, _measured, _unit_vectors, city
from loadtest.bench.harness import run_on_redis

K = 10
RARE = "wav"
GEO_KEY = "bench:all"
UPSERT_PRODUCTS: dict[str, tuple[str, ...]] = {
    "none": (),
    "1": ("economy",),
    "2": ("economy", "xl"),
    "3": ("comfort", "economy", "xl"),
}


async def interleaved(
    client: Any,
    commands: dict[str, Sequence[str]],
    cases: Mapping[str, Sequence[Callable[[], Awaitable[Any]]]],
    concurrency: int,
    rounds: int = 10,
) -> dict[str, tuple[float, float, list[Any]]]:
    """Per case: (wall seconds, Redis CPU microseconds, results), the cases' calls run in
    rounds that alternate between them."""
    out: dict[str, tuple[float, float, list[Any]]] = {c: (0.0, 0.0, []) for c in cases}
    names = list(cases)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            jobs = cases[name]
            chunk = jobs[r * len(jobs) // rounds : (r + 1) * len(jobs) // rounds]
            s, us, results = await _measured(client, commands[name], chunk, concurrency)
            total_s, total_us, all_results = out[name]
            out[name] = (total_s + s, total_us + us, all_results + results)
    return out


async def _load(client: Any, index: RedisGeoIndex, fixes: list[Position], workers: int) -> None:
    jobs = [partial(index.upsert, fixes[s : s + 500]) for s in range(0, len(fixes), 500)]
    await _measured(client, OURS, jobs, workers)


async def bench_knn(
    client: Any, drivers: np.ndarray, queries: np.ndarray, args: Any
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(args.seed + 1)
    now = int(time.time() * 1000)
    ids = [f"drv{i}" for i in range(len(drivers))]
    rare = set(rng.choice(len(drivers), int(len(drivers) * args.rare_share), replace=False))
    # Everyone serves economy (the index's default); the rare drivers also serve wav.
    index = RedisGeoIndex(client, ttl_ms=3_600_000, prefix="pk", default_products=["economy"])
    rare_ids = [ids[i] for i in sorted(rare)]
    await _measured(
        client,
        OURS,
        [partial(index.set_products, d, ["economy", RARE]) for d in rare_ids],
        args.concurrency,
    )
    fixes = [Position(ids[i], float(a), float(b), now) for i, (a, b) in enumerate(drivers)]
    await _load(client, index, fixes, args.concurrency)
    pipe = client.pipeline(transaction=False)
    for i, (lat, lng) in enumerate(drivers):
        pipe.geoadd(GEO_KEY, (float(lng), float(lat), ids[i]))
        if i % 1000 == 999:
            await pipe.execute()
            pipe = client.pipeline(transaction=False)
    await pipe.execute()
    serves_rare = {ids[i] for i in rare}  # the client-side map the baseline filters with

    stored = np.array([score_latlng(position_score(f.lat, f.lng)) for f in fixes])
    units = _unit_vectors(stored)
    rare_rows = np.array(sorted(rare))
    qs = [(float(a), float(b)) for a, b in queries]
    rows = []
    for r in RADII:

        async def filtered(lat: float, lng: float, r: float = r) -> list[str]:
            count = 20 * K
            while True:
                found = await client.geosearch(
                    GEO_KEY, longitude=lng, latitude=lat, radius=r, unit="m", sort="ASC",
                    count=count,
                )  # fmt: skip
                hits = [m for m in (x.decode() for x in found) if m in serves_rare]
                if len(hits) >= K or len(found) < count:
                    return hits[:K]
                count *= 2

        base_qs = qs[: args.baseline_queries]
        runs = await interleaved(
            client,
            {"all": OURS, "rare": OURS, "geo": ["geosearch"]},
            {
                "all": [partial(index.nearest, a, b, K, r) for a, b in qs],
                "rare": [partial(index.nearest, a, b, K, r, RARE) for a, b in qs],
                "geo": [partial(filtered, a, b) for a, b in base_qs],
            },
            args.concurrency,
        )
        (all_s, all_us, _), (rare_s, rare_us, hits) = runs["all"], runs["rare"]
        geo_s, geo_us, geo_hits = runs["geo"]
        sample = range(0, len(base_qs), max(1, len(base_qs) // args.recall_sample))
        found = geo_found = expected = 0
        for i in sample:
            truth = {
                ids[rare_rows[j]]
                for j in _brute_force(stored[rare_rows], units[rare_rows], *qs[i], K, r)
            }
            found += len(truth & {h.driver_id for h in hits[i]})
            geo_found += len(truth & set(geo_hits[i]))
            expected += len(truth)
        n, n_base = len(qs), len(base_qs)
        all_qps, rare_qps, geo_qps = n / all_s, n / rare_s, n_base / geo_s
        rows.append(
            {
                "k": K,
                "radius_m": r,
                "rare_qps": rare_qps,
                "all_drivers_qps": all_qps,
                "rare_vs_all": rare_qps / all_qps,
                "geosearch_filtered_qps": geo_qps,
                "rare_vs_geosearch_filtered": rare_qps / geo_qps,
                "redis_us_per_query": {
                    "rare": rare_us / n,
                    "all_drivers": all_us / n,
                    "geosearch_filtered": geo_us / n_base,
                },
                "recall": found / expected if expected else 1.0,
                "geosearch_filtered_recall": geo_found / expected if expected else 1.0,
            }
        )
    return rows


async def bench_upserts(client: Any, drivers: np.ndarray, args: Any) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed + 2)
    n = min(args.upsert_drivers, len(drivers))
    ids = [f"up{i}" for i in range(n)]
    now = int(time.time() * 1000)
    first = [Position(ids[i], float(a), float(b), now) for i, (a, b) in enumerate(drivers[:n])]
    # Each driver moves 5-50 m: a new res-15 cell, usually the same region.
    moved = drivers[:n] + rng.normal(0.0, 0.0002, size=(n, 2))
    second = [Position(ids[i], float(a), float(b), now + 1) for i, (a, b) in enumerate(moved)]
    cases = {}
    for name, products in UPSERT_PRODUCTS.items():
        index = RedisGeoIndex(
            client, ttl_ms=3_600_000, prefix=f"up{name}", default_products=products
        )
        await _load(client, index, first, args.concurrency)
        cases[name] = [partial(index.upsert, second[s : s + 500]) for s in range(0, n, 500)]
    runs = await interleaved(client, dict.fromkeys(cases, OURS), cases, args.concurrency)
    out: dict[str, Any] = {
        name: {"per_s": n / elapsed, "redis_us_per_op": us / n}
        for name, (elapsed, us, _) in runs.items()
    }
    base = out["1"]
    for row in out.values():
        row["cost_vs_single"] = base["per_s"] / row["per_s"]
        row["redis_cpu_vs_single"] = row["redis_us_per_op"] / base["redis_us_per_op"]
    return {"drivers": n, "products_per_driver": out}


async def main_async(args: Any, url: str) -> dict[str, Any]:
    drivers, queries = city(np.random.default_rng(args.seed), args.drivers, args.queries)
    client = aredis.Redis.from_url(url, max_connections=args.concurrency + 4)
    try:
        await client.flushdb()
        knn = await bench_knn(client, drivers, queries, args)
        await client.flushdb()
        upsert = await bench_upserts(client, drivers, args)
    finally:
        await client.aclose()
    return {
        "drivers": args.drivers,
        "queries": args.queries,
        "rare_share": args.rare_share,
        "concurrency": args.concurrency,
        "knn": knn,
        "upsert": upsert,
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench.products",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--drivers", type=int, default=200_000)
    p.add_argument("--queries", type=int, default=1_000)
    p.add_argument("--rare-share", type=float, default=0.05)
    p.add_argument("--upsert-drivers", type=int, default=50_000)
    p.add_argument("--baseline-queries", type=int, default=200, help="of them, for GEOSEARCH")
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--recall-sample", type=int, default=200, help="queries checked by brute force")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--redis-url", help="a Redis to use (its db is FLUSHED); default: start one")
    args = p.parse_args(argv)
    run_on_redis(args.redis_url, partial(main_async, args))


if __name__ == "__main__":
    main()
