"""The ops view reads a region's counts at most once per recompute interval (at most a
second) on one instance, and the quoted surge and the supply every time."""

from __future__ import annotations

from dispatch.domain.geo import LatLng
from dispatch.domain.market import Pin
from dispatch.service_layer.market import area_view, cell_of
from dispatch.service_layer.quotes import make_quote
from dispatch.service_layer.surge_job import surge_round
from tests.unit.dispatch.conftest import PICKUP, World, rider

HERE = LatLng(*PICKUP)


async def look(world: World) -> tuple[float, int, float]:
    cell, _ = cell_of(world.deps.market.config, HERE)
    view = await area_view(world.deps.market, world.deps.index, HERE, 500, world.clock.now)
    [mine] = [c for c in view if c.cell == cell]
    return mine.demand_per_min, mine.supply, mine.surge


async def test_counts_are_read_again_only_once_the_interval_has_passed(world: World) -> None:
    market = world.deps.market
    ttl_ms = min(1_000, market.config.interval_ms)
    await make_quote(world.deps, rider("u1"), HERE, None)
    assert await look(world) == (1.0, 0, 1.0)
    # A second rider, a driver and a pinned multiplier within the interval: the counts are
    # this instance's copy, the supply and the quoted surge are read again.
    await make_quote(world.deps, rider("u2"), HERE, None)
    await world.driver_at("d1", 10)
    cell, region = cell_of(market.config, HERE)
    await market.store.set_pins(region, {cell: Pin(2.0, world.clock.now + 60_000)}, 0)
    await surge_round(world.deps, "test", {})
    world.clock.advance(ttl_ms - 1)
    assert await look(world) == (1.0, 1, 2.0)
    world.clock.advance(1)
    assert await look(world) == (2.0, 1, 2.0)
