"""Benchmark: recomputing one region's surge from its counters, against a plain numpy pass
over the same counts.

    python -m loadtest.bench.market --cells 10000 --res 10 [--rounds 20] [--products 1]
        [--redis-url URL] [--profile PATH]

A region (an H3 cell of resolution 5) gets `--cells` active market cells (1-5 distinct
riders each, counted through the service's own store and Lua) and a few thousand
drivers; with `--products N` each rider asks for, and each driver serves, one of the
catalog's first N products in turn (the same riders and drivers, spread over N products:
N products' counters and surge to recompute). Then the service's recompute
(dispatch.service_layer.surge_job.recompute_region: read the window's riders, the
computed state and the pins, the supply from the index, smooth over ring 1, step with
hysteresis, write under the fence) runs `--rounds` times,
after a first round that lays the region's cells out (timed apart: a new region's or a
new holder's first round). A round writes only the fields that moved since its own last
write (`fields_written_*`: the counts stand still, so after the first rounds hysteresis
moves few); `--rounds` more rounds with surge turned off and on in turn before each
(every surging cell's fields written or cleared through the patch:
`recompute_all_moved_cpu_ms_median`); then `--rounds` more as a holder whose last write
the store no longer holds (its token deleted before each: the state read back, every
field written), timed as `recompute_full_write_cpu_ms_median`. The pure domain step
(dispatch.domain.market.recompute, the reference) and the service's vectorised step
(dispatch.service_layer.surge_fast) are also timed alone on the same maps.
Its CPU time is this process's (time.process_time: parsing, h3, the domain; Redis's
own time is another process). The baseline is the same arithmetic as one vectorised
numpy pass over arrays already laid out (demand, supply, a neighbour index table), in
the same run. Prints one JSON object. Without --redis-url a redis-server is started on
a free port and stopped afterwards; with it, that Redis is FLUSHED.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import statistics
import time
from functools import partial
from typing import Any

import numpy as np
import redis.asyncio as aredis
from h3.api import basic_str as h3

from dispatch.bootstrap import bootstrap
from dispatch.domain.geo import LatLng
from dispatch.domain.market import SurgePolicy, per_minute, recompute
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.market import ask_of, count_asks, ring1
from dispatch.service_layer.ports import Outcome
from dispatch.service_layer.surge_cells import CellLayout
from dispatch.service_layer.surge_fast import lay_out, next_surge, supply_table
from dispatch.service_layer.surge_job import recompute_region
from dispatch.settings import Settings
from geoindex import Position
from loadtest.bench.harness import run_on_redis

CENTRE = (40.7306, -73.9866)


class FrozenClock:
    """The service's clock held at the fill's time: the drivers stay fresh and the
    window's buckets the same however long a busy machine takes over the fill and the
    rounds (Redis still expires the buckets in real time: the asks are counted last)."""

    def __init__(self) -> None:
        self.at_ms = time.time_ns() // 1_000_000

    def now_ms(self) -> int:
        return self.at_ms


async def fill(
    deps: Deps, cells: list[str], rng: np.random.Generator, drivers: int, products: list[str]
) -> None:
    """Drivers on the map, then riders asking in every cell (as quotes would count
    them); the k-th rider asks for, the k-th driver serves, products[k % len(products)].
    The asks go in batches, each one pipelined call (count_asks)."""
    now = deps.clock.now_ms()
    spots = rng.choice(len(cells), size=drivers)
    fixes = []
    for i, c in enumerate(spots):
        lat, lng = h3.cell_to_latlng(cells[int(c)])
        fixes.append(Position(f"d{i}", lat, lng, now))
    if len(products) > 1:
        for start in range(0, drivers, 500):
            await asyncio.gather(
                *(
                    deps.index.set_products(f"d{i}", [products[i % len(products)]])
                    for i in range(start, min(start + 500, drivers))
                )
            )
    for start in range(0, len(fixes), 1000):
        await deps.index.upsert(fixes[start : start + 1000])
    asks = []
    k = 0
    for i, cell in enumerate(cells):
        at = LatLng(*h3.cell_to_latlng(cell))
        for r in range(int(rng.integers(1, 6))):
            product = products[k % len(products)]
            k += 1
            asks.append(ask_of(deps.market, f"r{i}-{r}", at, now, Outcome.QUOTE, product=product))
    for start in range(0, len(asks), 500):
        await count_asks(deps.market, asks[start : start + 500])


async def market_memory(url: str) -> dict[str, int]:
    """The market's counter keys (buckets and their distinct-rider sets) and the bytes
    Redis says they take (MEMORY USAGE, every value sampled)."""
    client = aredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter("mk:*:[bc]:*", count=1_000)]
        sizes = [await client.memory_usage(k, samples=0) or 0 for k in keys]
    finally:
        await client.aclose()
    return {"keys": len(keys), "bytes": sum(sizes)}


def numpy_pass(
    demand: np.ndarray, supply: np.ndarray, nbr: np.ndarray, current: np.ndarray, p: SurgePolicy
) -> np.ndarray:
    """The same smoothing, target and hysteresis step, vectorised. `nbr` holds each
    cell's ring-1 indices, padded with len(demand) (a zero slot)."""
    d = np.append(demand, 0.0)
    s = np.append(supply, 0.0)
    deg = (nbr < len(demand)).sum(axis=1)
    weight = p.centre_weight + p.ring_weight * deg
    ds = (p.centre_weight * demand + p.ring_weight * d[nbr].sum(axis=1)) / weight
    ss = (p.centre_weight * supply + p.ring_weight * s[nbr].sum(axis=1)) / weight
    pressure = ds / np.maximum(ss, p.min_supply)
    goal = np.floor((1.0 + p.sensitivity * (pressure - 1.0)) / p.step + 1e-9) * p.step
    goal = np.where(pressure <= 1.0, 1.0, np.clip(goal, 1.0, p.cap))
    gap = goal - current
    at_bound = (goal <= 1.0) | (goal >= p.cap)
    move = np.where((np.abs(gap) >= p.band) | at_bound, np.clip(gap, -p.max_move, p.max_move), 0)
    return np.asarray(np.clip(current + move, 1.0, p.cap))


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    settings = Settings(redis_url=url, market_res=args.res, region_res=5)
    async with bootstrap(settings, clock=FrozenClock()) as runtime:
        deps = runtime.deps
        region_cell = h3.latlng_to_cell(*CENTRE, 5)
        children = sorted(h3.cell_to_children(region_cell, args.res))
        if args.cells > len(children):
            raise SystemExit(f"a region has only {len(children)} cells of resolution {args.res}")
        cells = [children[int(i)] for i in rng.choice(len(children), args.cells, replace=False)]
        products = list(deps.market.config.products[: args.products])
        await fill(deps, cells, rng, args.drivers, products)
        counters = await market_memory(url)
        region = int(region_cell, 16)
        store = deps.market.store
        fence = await store.take_lease(region, "bench", 600_000)
        assert fence is not None
        c0 = time.process_time()
        await recompute_region(deps, region, "bench", fence)  # lays the cells out
        first_cpu = time.process_time() - c0
        # Fields each round's write changes (a round writes what moved since its last).
        written: list[int] = []
        patch_surge = store.patch_surge

        async def counted(*a: Any, **k: Any) -> bool | None:
            patch = a[3]
            written.append(len(patch.quoted) + len(patch.highest))
            return await patch_surge(*a, **k)

        store.patch_surge = counted  # type: ignore[method-assign]
        ours_cpu, ours_wall = [], []
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        for _ in range(args.rounds):
            c0, w0 = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            assert await recompute_region(deps, region, "bench", fence)
            if profiler:
                profiler.disable()
            ours_cpu.append(time.process_time() - c0)
            ours_wall.append(time.perf_counter() - w0)
        if profiler:
            profiler.dump_stats(args.profile)
        # Rounds where every field moves, through the patch: surge turned off before one
        # round, on before the next (each round writes every surging cell twice over).
        moved_cpu, moved_fields = [], len(written)
        for i in range(args.rounds):
            await store.set_enabled(i % 2 == 1)
            c0 = time.process_time()
            assert await recompute_region(deps, region, "bench", fence)
            moved_cpu.append(time.process_time() - c0)
        await store.set_enabled(True)
        all_moved = written[moved_fields:]
        del written[moved_fields:]
        store.patch_surge = patch_surge  # type: ignore[method-assign]
        # The same rounds as a holder that did not write last (a takeover every round, or
        # a write the store lost): the state read and parsed, every field written.
        full_cpu = []
        client = aredis.Redis.from_url(url)
        try:
            for _ in range(args.rounds):
                await client.delete(f"mk:{{r{region:x}}}:token")
                c0 = time.process_time()
                assert await recompute_region(deps, region, "bench", fence)
                full_cpu.append(time.process_time() - c0)
        finally:
            await client.aclose()
        # The same counts, laid out for numpy (layout not timed: it is the input).
        window = deps.market.config.window
        # (Every product's counts summed: one map, the arithmetic of one product's pass.)
        counts = (await store.counts([region], window, deps.clock.now_ms(), products))[region]
        demand_map = {c: per_minute(n.riders, window.window_ms) for c, n in counts.items()}
        if len(demand_map) < args.cells:
            raise SystemExit(
                f"only {len(demand_map)} of {args.cells} cells still had demand after the rounds"
                " (counts lost or expired): figures not comparable, run again"
            )
        current_map = (await store.computed(region)).get(products[0], {})
        universe = sorted(set(demand_map) | {n for c in demand_map for n in ring1(c)})
        where = {c: i for i, c in enumerate(universe)}
        pad = len(universe)
        nbr = np.full((len(universe), 6), pad, dtype=np.int64)
        for c, i in where.items():
            for j, n in enumerate(ring1(c)):
                nbr[i, j] = where.get(n, pad)
        supply_map: dict[str, float] = {}
        for start in range(0, len(universe), 5_000):
            supply_map.update(await deps.index.supply_in(universe[start : start + 5_000]))
        demand = np.array([demand_map.get(c, 0.0) for c in universe])
        supply = np.array([supply_map.get(c, 0.0) for c in universe])
        current = np.array([current_map.get(c, 1.0) for c in universe])
        policy = deps.market.config.policy
        np_cpu = []
        for _ in range(args.rounds):
            c0 = time.process_time()
            numpy_pass(demand, supply, nbr, current, policy)
            np_cpu.append(time.process_time() - c0)
        # The pure domain step alone, on the same maps (where our time goes).
        domain_cpu = []
        for _ in range(args.rounds):
            c0 = time.process_time()
            reference = recompute(demand_map, supply_map, current_map, ring1, policy)
            domain_cpu.append(time.process_time() - c0)
        # The service's vectorised step alone, on the same maps (a kept layout).
        layout = CellLayout(ring1)
        fast_cpu = []
        for _ in range(args.rounds + 1):
            c0 = time.process_time()
            laid = lay_out(layout, {"p": demand_map}, {"p": current_map})
            vectorised = next_surge(laid, supply_table(laid, {"p": supply_map}), policy)["p"]
            fast_cpu.append(time.process_time() - c0)
        fast_cpu.pop(0)  # the layout's first round
        ours = statistics.median(ours_cpu)
        base = statistics.median(np_cpu)
        return {
            "benchmark": "market_recompute",
            "cells": args.cells,
            "products": products,
            "cells_computed": len(universe),
            "market_res": args.res,
            "drivers": args.drivers,
            "rounds": args.rounds,
            "recompute_cpu_ms_median": round(ours * 1000, 2),
            "recompute_cpu_ms_max": round(max(ours_cpu) * 1000, 2),
            "recompute_wall_ms_median": round(statistics.median(ours_wall) * 1000, 2),
            "first_round_cpu_ms": round(first_cpu * 1000, 2),
            "fields_written_median": statistics.median(written) if written else None,
            "fields_written_max": max(written) if written else None,
            "recompute_full_write_cpu_ms_median": round(statistics.median(full_cpu) * 1000, 2),
            "recompute_all_moved_cpu_ms_median": round(statistics.median(moved_cpu) * 1000, 2),
            "all_moved_fields_median": statistics.median(all_moved) if all_moved else None,
            "domain_step_cpu_ms_median": round(statistics.median(domain_cpu) * 1000, 2),
            "vectorised_step_cpu_ms_median": round(statistics.median(fast_cpu) * 1000, 2),
            "vectorised_equals_reference": vectorised == reference,
            "surging_cells": len(current_map),
            "numpy_pass_cpu_ms_median": round(base * 1000, 3),
            "counter_keys": counters["keys"],
            "counter_bytes": counters["bytes"],
            "ratio_recompute_to_numpy": round(ours / base, 1) if base else None,
            "target_cpu_ms": 50,
            "within_target": ours * 1000 <= 50,
        }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--res", type=int, default=10)
    ap.add_argument("--drivers", type=int, default=5_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--products", type=int, default=1, help="riders and drivers spread over N")
    ap.add_argument("--redis-url")
    ap.add_argument("--profile", help="write cProfile stats of the timed rounds here")
    args = ap.parse_args(argv)
    if args.redis_url:
        import redis

        redis.Redis.from_url(args.redis_url).flushall()
    run_on_redis(args.redis_url, partial(run, args))


if __name__ == "__main__":
    main()
