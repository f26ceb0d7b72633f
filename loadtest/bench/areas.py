"""Benchmark: point-in-area lookups and location ingest with areas.

    python -m loadtest.bench.areas [--areas 1000] [--points 100000] [--fixes 40000]
                                   [--fleet-batch N] [--redis | --redis-url URL]
                                   [--skip-lookups | --skip-ingest] [--compiled-cache DIR]

1. Lookups: `--areas` district-sized polygons (50 to 500 vertices, smooth district-like
   outlines, a fifth with a hole) over a city, compiled as the service compiles them
   (H3 cells; boundary cells by their local segments, else shapely); `--points` random
   points over the same city answered one at a time by the compiled index and, in the
   same run, by shapely's STRtree as it is usually used (`query(point)` for candidates
   by bounding box, then `intersects` (contains, boundary included) on each: the
   ratio), and in its best form (prepared polygons, `query(point,
   predicate="intersects")`: reported beside it). The same points once more as one
   batch (dispatch/service_layer/area_batch.py: numpy arrays in and out) against the
   per-point STRtree baseline, and against the tree's own bulk query (every point in
   one `query` call): the median of 3 runs each. Times are this process's CPU time
   (steadier than wall time on a loaded machine; all of it single-threaded). Answers
   are compared point by point.
2. Ingest: the service's own location use case (drivers.update_location: the index write,
   then the geofence and the airport queues) for `--fixes` fixes of 2,000 drivers moving
   about the city (`--step-m`, 10 m, between fixes: 36 km/h at a fix a second), with
   no areas, then with the `--areas` areas (a tenth of them airports) and events on;
   the ratio of the throughputs. The areas are compiled once, before the rounds, and
   stay in memory for every run (as in an instance, they are there from its start):
   what differs is whether the fixes are checked against them. With --fleet-batch N,
   the fixes go in fleet batches of N instead (drivers.update_locations, as POST
   /v1/locations: one index call and one geofence pass a batch). On the embedded
   backend by default; with --redis, on a redis-server started on a free port; with
   --redis-url, on that Redis (it is FLUSHED).
   With --compiled-cache DIR, the ingest part's compiled areas are kept in DIR and read
   back by a later run (a minute of CPU less a run): the file is named by a hash of the
   areas themselves and of the compiling code (area_index, area_grid, area_shapes) and
   the shapely and h3 versions, so a change to any of those compiles afresh; read back,
   each geometry is prepared again, as compile_area leaves it. The lookups part always
   compiles (its compile_s is a figure of its own).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import math
import pickle
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from itertools import pairwise
from pathlib import Path
from typing import Any

import h3
import numpy as np
import orjson
import shapely
import uvloop

from dispatch.bootstrap import bootstrap
from dispatch.domain.areas import Area, AreaKind, Ring
from dispatch.domain.principals import Principal, Role
from dispatch.service_layer import area_grid, area_index, area_shapes, drivers
from dispatch.service_layer.area_batch import holding_many
from dispatch.service_layer.area_index import CompiledArea, build_index, compile_area
from dispatch.service_layer.area_shapes import area_geometry
from dispatch.service_layer.drivers import Fix
from dispatch.settings import Settings
from geoindex import Position
from loadtest.redis_procs import RedisServer

CENTRE = (52.52, 13.405)
SPAN = 0.4  # degrees of latitude and longitude the city covers
OPS = Principal(Role.OPS, "bench")
FLEET = Principal(Role.FLEET, "bench")


def district_ring(rng: np.random.Generator, lat: float, lng: float, r: float, n: int) -> Ring:
    """A district-like outline: a radius that wanders smoothly round the centre (two
    slow waves) with a little noise per vertex, never crossing itself."""
    stretch = 1 / math.cos(math.radians(lat))
    k1, k2 = int(rng.integers(2, 5)), int(rng.integers(5, 11))
    p1, p2 = rng.uniform(0, 2 * math.pi, 2)
    pts = []
    for i in range(n):
        a = 2 * math.pi * i / n
        rr = r * (1 + 0.25 * math.sin(k1 * a + p1) + 0.1 * math.sin(k2 * a + p2))
        rr *= 1 + float(rng.uniform(-0.02, 0.02))
        pts.append((lng + rr * stretch * math.cos(a), lat + rr * math.sin(a)))
    return (*pts, pts[0])


def make_areas(rng: np.random.Generator, count: int) -> list[Area]:
    areas = []
    for i in range(count):
        lat = CENTRE[0] + rng.uniform(-SPAN / 2, SPAN / 2)
        lng = CENTRE[1] + rng.uniform(-SPAN / 2, SPAN / 2)
        r = float(rng.uniform(0.004, 0.02))
        outer = district_ring(rng, lat, lng, r, int(rng.integers(50, 450)))
        rings: tuple[Ring, ...] = (outer,)
        if i % 5 == 0:  # a hole well inside: a ring of radius below the outer's minimum
            rings += (tuple(reversed(district_ring(rng, lat, lng, r * 0.3, 49))),)
        kind = AreaKind.AIRPORT if i % 10 == 0 else AreaKind.NO_PICKUP
        areas.append(Area(f"a{i}", kind, f"area {i}", (rings,), 30.0))
    return areas


def lookups(areas: list[Area], points: np.ndarray) -> dict[str, Any]:
    started = time.process_time()
    index = build_index(areas)
    compile_s = time.process_time() - started
    geoms = [area_geometry(a) for a in areas]
    for g in geoms:
        shapely.prepare(g)
    tree = shapely.STRtree(geoms)
    pairs = [(float(lat), float(lng)) for lat, lng in points]
    shapes = [shapely.Point(lng, lat) for lat, lng in pairs]

    started = time.process_time()
    held = [index.holding(lat, lng) for lat, lng in pairs]
    ours_s = time.process_time() - started
    ours = [sorted(c.area.id for c in h) for h in held]  # for the comparison, not timed
    # The same points as one batch (area_batch: numpy arrays in, arrays out).
    lats, lngs = points[:, 0].copy(), points[:, 1].copy()
    batch_s = _median(lambda: holding_many(index, lats, lngs))
    offsets, found = holding_many(index, lats, lngs)
    batched = [sorted(index.areas[k].area.id for k in found[a:b]) for a, b in pairwise(offsets)]

    # The baseline as usually written: the tree's candidates, then contains on each.
    plain = [area_geometry(a) for a in areas]
    plain_tree = shapely.STRtree(plain)
    started = time.process_time()
    theirs = [[int(i) for i in plain_tree.query(p) if plain[int(i)].intersects(p)] for p in shapes]
    tree_s = time.process_time() - started
    # Its best form: prepared polygons, the exact test inside the tree's query.
    started = time.process_time()
    best = [tree.query(p, predicate="intersects") for p in shapes]
    best_s = time.process_time() - started
    # And the tree's own bulk form: every point in one call, its loop in C.
    all_points = shapely.points(points[:, 1], points[:, 0])
    bulk_s = _median(lambda: tree.query(all_points, predicate="intersects"))
    theirs_ids = [sorted(areas[i].id for i in hits) for hits in theirs]
    best_ids = [sorted(areas[int(i)].id for i in hits) for hits in best]
    mismatches = sum(a != b for a, b in zip(ours, theirs_ids, strict=True))
    mismatches += sum(a != b for a, b in zip(ours, best_ids, strict=True))
    mismatches += sum(a != b for a, b in zip(batched, theirs_ids, strict=True))
    compiled = index.areas
    return {
        "areas": len(areas),
        "vertices_mean": round(sum(a.vertex_count for a in areas) / len(areas)),
        "points": len(pairs),
        "points_in_some_area": sum(bool(x) for x in ours),
        "compile_s": round(compile_s, 2),
        "inside_cells": sum(len(c.inside) for c in compiled),
        "edge_cells": sum(len(c.edge) for c in compiled),
        "ours_us_per_lookup": round(ours_s / len(pairs) * 1e6, 2),
        "strtree_query_contains_us_per_lookup": round(tree_s / len(pairs) * 1e6, 2),
        "ratio": round(tree_s / ours_s, 1),
        "strtree_prepared_predicate_us_per_lookup": round(best_s / len(pairs) * 1e6, 2),
        "ratio_to_prepared_predicate": round(best_s / ours_s, 1),
        "ours_batched_us_per_lookup": round(batch_s / len(pairs) * 1e6, 2),
        "ratio_batched": round(tree_s / batch_s, 1),
        "strtree_bulk_query_us_per_lookup": round(bulk_s / len(pairs) * 1e6, 2),
        "ratio_batched_to_bulk_query": round(bulk_s / batch_s, 1),
        "mismatches": mismatches,
    }


def compiled_areas(areas: list[Area], cache: str | None) -> list[CompiledArea]:
    """compile_area of each area, or what an earlier run with the same areas and the same
    compiling code compiled and kept in `cache` (a directory)."""
    if cache is None:
        return [compile_area(a) for a in areas]
    key = hashlib.sha256(pickle.dumps(areas))
    for module in (area_index, area_grid, area_shapes):
        key.update(Path(str(module.__file__)).read_bytes())
    key.update(f"{shapely.__version__} {h3.__version__}".encode())
    path = Path(cache) / f"areas-{key.hexdigest()[:24]}.pickle"
    if path.exists():
        compiled: list[CompiledArea] = pickle.loads(path.read_bytes())
        for c in compiled:
            shapely.prepare(c.geometry)
        print(f"compiled areas read from {path}", file=sys.stderr)
        return compiled
    compiled = [compile_area(a) for a in areas]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(pickle.dumps(compiled))
    partial.replace(path)
    return compiled


def _median(run: Callable[[], object], times: int = 3) -> float:
    """The median of a few runs (s): a batch is one call, so one unlucky moment of a
    loaded machine would otherwise be its whole figure."""
    spans = []
    for _ in range(times):
        started = time.process_time()
        run()
        spans.append(time.process_time() - started)
    return statistics.median(spans)


@contextlib.contextmanager
def geofence_cpu() -> Iterator[list[float]]:
    """This process's CPU (s) inside the geofence's calls from the location use cases
    (drivers.track_fix, track_fixes), summed into the list's one item. Exact only where
    those calls never wait for another process (the embedded backend): on Redis, other
    fixes run while one waits."""
    spent = [0.0]
    names = vars(drivers)  # the use cases call them by these names
    one, many = names["track_fix"], names["track_fixes"]

    async def timed_one(*args: Any) -> None:
        started = time.process_time()
        await one(*args)
        spent[0] += time.process_time() - started

    async def timed_many(*args: Any) -> None:
        started = time.process_time()
        await many(*args)
        spent[0] += time.process_time() - started

    names["track_fix"], names["track_fixes"] = timed_one, timed_many
    try:
        yield spent
    finally:
        names["track_fix"], names["track_fixes"] = one, many


async def ingest_rate(
    settings: Settings,
    areas: list[CompiledArea],
    fixes: int,
    seed: int,
    step_m: float,
    batch: int = 0,
) -> tuple[float, float, float]:
    """Fixes per second through drivers.update_location, 64 in flight at a time (or, with
    `batch`, drivers.update_locations: fleet batches of that many fixes, one at a time),
    this process's CPU per fix (µs; on Redis, Redis's own time is another process), and
    of that the geofence's (geofence_cpu). The areas come compiled: every run, with areas
    or without, has them in memory, and only the fenced runs use them."""
    rng = np.random.default_rng(seed)
    async with bootstrap(settings) as runtime:
        deps = runtime.deps
        for c in areas:
            await deps.areas.store.put(c.area, len(areas) + 1)
        # The book keeps the compiled form of an area it knows unchanged: these.
        deps.areas._compiled = {c.area.id: c for c in areas}
        await deps.areas.refresh()
        if areas:
            assert len(deps.areas.index) == len(areas)
        fleet = 2_000
        lats = CENTRE[0] + rng.uniform(-SPAN / 2, SPAN / 2, fleet)
        lngs = CENTRE[1] + rng.uniform(-SPAN / 2, SPAN / 2, fleet)
        seq = [0] * fleet
        step_deg = step_m / 111_195 / math.sqrt(2)  # about step_m per fix, any direction
        ts0 = deps.clock.now_ms() - 60_000

        def move(i: int, k: int) -> Fix:
            lats[i] += rng.normal(0, step_deg)
            lngs[i] += rng.normal(0, step_deg * 1.6)
            seq[i] += 1
            return Fix(float(lats[i]), float(lngs[i]), ts0 + k, seq[i])

        def step(i: int, k: int) -> Any:
            who = f"d{i}"
            return drivers.update_location(deps, Principal(Role.DRIVER, who), who, move(i, k))

        async def post(drivers_in: list[int], k: int) -> None:
            fixes = [(i, move(i, k)) for i in drivers_in]
            batch_of = [Position(f"d{i}", f.lat, f.lng, f.ts_ms, f.seq) for i, f in fixes]
            await drivers.update_locations(deps, FLEET, batch_of)

        # warm up: every driver once (first sight of each driver is not the steady state)
        for start in range(0, fleet, 64):
            await asyncio.gather(*(step(i, start) for i in range(start, min(fleet, start + 64))))
        order = rng.integers(0, fleet, fixes)
        warm_ms = deps.clock.now_ms()
        started, cpu = time.perf_counter(), time.process_time()
        per = batch or 64
        with geofence_cpu() as spent:
            for start in range(0, fixes, per):
                # one fix per driver per batch: a driver's fixes arrive in order
                some = [int(i) for i in dict.fromkeys(order[start : start + per])]
                if batch:
                    await post(some, fleet + start)
                else:
                    await asyncio.gather(*(step(i, fleet + start + j) for j, i in enumerate(some)))
        elapsed = time.perf_counter() - started
        cpu_us = (time.process_time() - cpu) / fixes * 1e6  # this process: the instance's
        fence_us = spent[0] / fixes * 1e6
        logged = [orjson.loads(e) for e in await deps.fences.log.recent(1_000_000)]
        events = sum(e["type"] == "area" and e["ts"] >= warm_ms for e in logged)
        print(
            f"ingest with {len(deps.areas.index)} areas: {fixes / elapsed:,.0f}/s, "
            f"{cpu_us:.1f} µs CPU a fix ({fence_us:.1f} in the geofence), "
            f"{events} crossings after the warm-up",
            file=sys.stderr,
        )
        return fixes / elapsed, cpu_us, fence_us


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    areas = make_areas(rng, args.areas)
    lat = CENTRE[0] + rng.uniform(-SPAN / 2, SPAN / 2, args.points)
    lng = CENTRE[1] + rng.uniform(-SPAN / 2, SPAN / 2, args.points)
    out: dict[str, Any] = {}
    if not args.skip_lookups:
        out["lookup"] = lookups(areas, np.stack([lat, lng], axis=1))
    if args.skip_ingest:
        return out
    settings = Settings(redis_url=args.redis_url) if args.redis_url else Settings()
    # Compiled once, as an instance does when it starts, and kept for every run.
    compiled = compiled_areas(areas, args.compiled_cache)
    if args.redis_url:
        from redis import Redis

        Redis.from_url(args.redis_url).flushall()
    # Alternate the two runs, so the machine's noise falls on both alike.
    plain: list[tuple[float, float, float]] = []
    fenced: list[tuple[float, float, float]] = []
    for r in range(args.rounds):
        run = (args.fixes, args.seed + r, args.step_m, args.fleet_batch)
        plain.append(await ingest_rate(settings, [], *run))
        if args.redis_url:
            Redis.from_url(args.redis_url).flushall()
        fenced.append(await ingest_rate(settings, compiled, *run))
        if args.redis_url:
            Redis.from_url(args.redis_url).flushall()
    best_plain, best_fenced = max(r[0] for r in plain), max(r[0] for r in fenced)
    # CPU per fix moves less with the machine's load than the rate does.
    cpu_plain, cpu_fenced = min(r[1] for r in plain), min(r[1] for r in fenced)
    per_round = [p[1] / f[1] for p, f in zip(plain, fenced, strict=True)]
    # Within one run: the fenced run's CPU less what its geofence took (plus what the
    # geofence takes with no areas), over its CPU. Both sides of this ratio come from the
    # same seconds of the same process, so a load that changes between runs moves it
    # little (the embedded backend only: see geofence_cpu).
    shares = [(f[1] - f[2] + p[2]) / f[1] for p, f in zip(plain, fenced, strict=True)]
    out["ingest"] = {
        "backend": settings.backend,
        "fixes": args.fixes,
        "fleet_batch": args.fleet_batch,
        "rounds": args.rounds,
        "no_areas_per_s": round(best_plain),
        "with_areas_and_events_per_s": round(best_fenced),
        "ratio": round(best_fenced / best_plain, 3),
        # Each round's two runs in turn: their throughputs' ratio, and its median.
        "ratio_per_round": [round(f[0] / p[0], 3) for p, f in zip(plain, fenced, strict=True)],
        "ratio_median": round(
            statistics.median(f[0] / p[0] for p, f in zip(plain, fenced, strict=True)), 3
        ),
        "cpu_us_per_fix_no_areas": round(cpu_plain, 1),
        "cpu_us_per_fix_with_areas": round(cpu_fenced, 1),
        "cpu_ratio": round(cpu_plain / cpu_fenced, 3),
        # Each round's two runs follow each other: their ratio is the least moved by a
        # load that changes between rounds.
        "cpu_ratio_per_round": [round(r, 3) for r in per_round],
        "cpu_ratio_median": round(statistics.median(per_round), 3),
        "geofence_cpu_us_per_fix_no_areas": [round(p[2], 2) for p in plain],
        "geofence_cpu_us_per_fix_with_areas": [round(f[2], 2) for f in fenced],
        "cpu_ratio_by_geofence_share_per_round": (
            None if args.redis_url else [round(r, 3) for r in shares]
        ),
    }
    return out


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--areas", type=int, default=1_000)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--fixes", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--step-m", type=float, default=10.0, help="metres a driver moves between fixes"
    )
    parser.add_argument(
        "--fleet-batch",
        type=int,
        default=0,
        help="ingest as fleet batches (POST /v1/locations) of this many fixes; 0: single fixes",
    )
    parser.add_argument("--redis-url", default=None)
    parser.add_argument(
        "--redis", action="store_true", help="ingest on a redis-server started on a free port"
    )
    parser.add_argument("--skip-lookups", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument(
        "--compiled-cache",
        default=None,
        metavar="DIR",
        help="keep the ingest part's compiled areas here, named by what they depend on",
    )
    args = parser.parse_args()
    uvloop.install()
    with ExitStack() as stack:
        if args.redis and not args.redis_url:
            args.redis_url = stack.enter_context(RedisServer()).url
        print(orjson.dumps(asyncio.run(main(args)), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    cli()
