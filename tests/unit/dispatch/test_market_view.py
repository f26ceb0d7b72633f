"""The ops view reads the market store (a region's counts, the cells' quoted surge, the
switch) at most once per recompute interval (at most a second) on one instance, and the
supply every time; quotes always read the store."""

from __future__ import annotations

from dispatch.domain.geo import LatLng
from dispatch.domain.market import Pin
from dispatch.domain.principals import Principal, Role
from dispatch.service_layer import market_ops
from dispatch.service_layer.market import cell_of, surge_at
from dispatch.service_layer.quotes import make_quote
from dispatch.service_layer.surge_job import surge_round
from tests.unit.dispatch.conftest import PICKUP, World, rider

HERE = LatLng(*PICKUP)
OPS = Principal(Role.OPS, "o1")


async def look(world: World) -> tuple[float, int, float, bool]:
    cell, _ = cell_of(world.deps.market.config, HERE)
    view, enabled = await market_ops.view_and_switch(world.deps, OPS, HERE, 500)
    [mine] = [c for c in view if c.cell == cell]
    return mine.demand_per_min, mine.supply, mine.surge, enabled


async def test_the_market_is_read_again_only_once_the_interval_has_passed(world: World) -> None:
    market = world.deps.market
    ttl_ms = min(1_000, market.config.interval_ms)
    await make_quote(world.deps, rider("u1"), HERE, None)
    assert await look(world) == (1.0, 0, 1.0, True)
    # Within the interval: a second rider, a pinned multiplier and surge turned off are
    # not seen yet (this instance's copy); the new driver is (supply is read every time),
    # and so is the pin by a quote.
    await make_quote(world.deps, rider("u2"), HERE, None)
    await world.driver_at("d1", 10)
    cell, region = cell_of(market.config, HERE)
    await market.store.set_pins(region, {(cell, None): Pin(2.0, world.clock.now + 60_000)}, 0)
    await surge_round(world.deps, "test", {})
    await market_ops.set_enabled(world.deps, OPS, False)
    assert (await surge_at(market, HERE))[1] == 2.0
    world.clock.advance(ttl_ms - 1)
    assert await look(world) == (1.0, 1, 1.0, True)
    world.clock.advance(1)
    assert await look(world) == (2.0, 1, 2.0, False)
