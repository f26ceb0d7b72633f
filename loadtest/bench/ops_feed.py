"""What one tick of the ops feed costs on the event loop at 10,000 drivers moving every
second, in process (no HTTP): the look at the area, taking the world into the shared
view, and encoding the frames. CPU time per tick (steadier than wall time on a busy
machine) and the longest the loop was held in one piece (wall time: inflated when the
machine is busy); on the embedded backend also the market layer's look, made once per
surge recompute, over the whole watched area against one read of the market's bound.

    python -m loadtest.bench.ops_feed [--drivers 10000] [--ticks 30] [--profile]
        [--redis]

On --redis, the index's scans run in redis-server: what is measured is the instance's
share (the replies' decoding and everything after).

--profile also prints cProfile's top functions (cumulative) over the same ticks: where
the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import pstats
import random
import time
from types import SimpleNamespace
from typing import Any

import redis.asyncio

from dispatch.adapters.fanout import MemoryNotifier
from dispatch.adapters.memory_market import MemoryMarketStore, MemoryQuoteStore
from dispatch.domain.products import DEFAULT_CATALOG
from dispatch.entrypoints.ops_feed import OpsFeed
from dispatch.entrypoints.ops_layers import LayerLook
from dispatch.service_layer.market import MAX_VIEW_RADIUS_M, Market, MarketConfig
from dispatch.service_layer.ops_view import Area
from geoindex import MemoryGeoIndex, Position, RedisGeoIndex
from loadtest.bench.harness import machine, median
from loadtest.bench.ops_stream import BATCH, CENTRE, Fleet
from loadtest.redis_procs import RedisServer

AREA = Area(CENTRE[0], CENTRE[1], 10_000.0)  # the default watched area


class Deps:
    def __init__(self, index: MemoryGeoIndex) -> None:
        self.index = index
        self.notifier = MemoryNotifier()
        self.products = DEFAULT_CATALOG


async def held_ms(during: asyncio.Task[Any]) -> list[float]:
    """How late a 1 ms sleep wakes while `during` runs: the loop's longest holds."""
    late: list[float] = []
    while not during.done():
        t = time.perf_counter()
        await asyncio.sleep(0.001)
        late.append((time.perf_counter() - t) * 1e3 - 1.0)
    return late


async def run(args: argparse.Namespace, redis_url: str | None) -> dict[str, Any]:
    clock = {"ms": 1_800_000_000_000}
    index: Any
    if redis_url is None:
        index = MemoryGeoIndex(clock=lambda: clock["ms"])
    else:
        index = RedisGeoIndex(redis.asyncio.from_url(redis_url), clock=lambda: clock["ms"])
    fleet = Fleet(args.drivers, random.Random(args.seed))
    feed = OpsFeed(Deps(index), AREA, 20_000, now_ms=lambda: clock["ms"])  # type: ignore[arg-type]

    async def move() -> None:
        clock["ms"] += 1_000
        fleet.step()
        for start in range(0, fleet.n, BATCH):
            await index.upsert(
                [
                    Position(f"d{i:05d}", fleet.lat[i], fleet.lng[i], clock["ms"], fleet.seq)
                    for i in range(start, min(start + BATCH, fleet.n))
                ]
            )

    ticks: list[float] = []
    holds: list[float] = []
    profile = cProfile.Profile() if args.profile else None
    with feed.watch() as page:
        for i in range(args.ticks + 2):
            await move()
            if profile is not None and i >= 2:
                profile.enable()
            cpu = time.thread_time()
            tick = asyncio.create_task(feed.tick())
            late = await held_ms(tick)
            await tick
            if profile is not None:
                profile.disable()
            while not page.frames.empty():
                page.frames.get_nowait()
            if i >= 2:  # past the first snapshot and the first delta
                ticks.append((time.thread_time() - cpu) * 1e3)
                holds.append(max(late, default=0.0))
    if profile is not None:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    layers = await market_layer_cpu_ms(index, clock["ms"]) if redis_url is None else {}
    await index.close()
    return {
        "backend": "embedded" if redis_url is None else "redis",
        "drivers": args.drivers,
        "ticks": args.ticks,
        "tick_cpu_ms_median": round(median(ticks), 1),
        "loop_held_ms_median": round(median(holds), 1),
        "loop_held_ms_max": round(max(holds), 1),
        **layers,
        "machine": machine(),
    }


async def market_layer_cpu_ms(index: MemoryGeoIndex, now_ms: int) -> dict[str, float]:
    """The market layer's look (embedded stores), made once per surge recompute: over the
    whole watched area (several reads within the market read's bound) and, to compare,
    one read of that bound."""
    market = Market(
        MemoryMarketStore(lambda: now_ms), MemoryQuoteStore(lambda: now_ms), MarketConfig()
    )
    deps: Any = SimpleNamespace(
        market=market, index=index, areas=SimpleNamespace(version=0, all=list), fences=None
    )
    out = {}
    for name, radius in (("watched_area", AREA.radius_m), ("one_read", MAX_VIEW_RADIUS_M)):
        look = LayerLook(deps, Area(AREA.lat, AREA.lng, radius))
        times = []
        for i in range(11):
            cpu = time.thread_time()
            await look.look(now_ms + i * market.config.interval_ms)  # due every time
            times.append((time.thread_time() - cpu) * 1e3)
        out[f"market_layer_cpu_ms_{name}"] = round(median(times[1:]), 1)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.ops_feed")
    p.add_argument("--drivers", type=int, default=10_000)
    p.add_argument("--ticks", type=int, default=30)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--redis", action="store_true", help="a standalone Redis, not embedded")
    args = p.parse_args(argv)
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(RedisServer(tie_to_parent=True)).url if args.redis else None
        print(json.dumps(asyncio.run(run(args, url))))


if __name__ == "__main__":
    main()
