"""GET /v1/market's answer per area (market.AreaSnapshots): the last one read for the
area, read again behind the reads once a recompute interval (at most a second) old, read
before answering once too old; the market store's counts, surge and switch under it read
at most once per interval (ViewCache); quotes always read the store."""

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


async def look(world: World) -> tuple[float, int, float, bool, int]:
    cell, _ = cell_of(world.deps.market.config, HERE)
    snap = await market_ops.view_and_switch(world.deps, OPS, HERE, 500)
    [mine] = [c for c in snap.cells if c.cell == cell]
    return mine.demand_per_min, mine.supply, mine.surge, snap.enabled, snap.at_ms


async def change_everything(world: World) -> None:
    """A second rider, a driver, a pinned multiplier (recomputed) and surge turned off."""
    market = world.deps.market
    await make_quote(world.deps, rider("u2"), HERE, None)
    await world.driver_at("d1", 10)
    cell, region = cell_of(market.config, HERE)
    await market.store.set_pins(region, {(cell, None): Pin(2.0, world.clock.now + 60_000)}, 0)
    await surge_round(world.deps, "test", {})
    await market_ops.set_enabled(world.deps, OPS, False)


async def test_an_area_is_read_again_behind_the_reads_once_an_interval_old(world: World) -> None:
    market = world.deps.market
    refresh_ms = min(1_000, market.config.interval_ms)
    await make_quote(world.deps, rider("u1"), HERE, None)
    t0 = world.clock.now
    assert await look(world) == (1.0, 0, 1.0, True, t0)
    await change_everything(world)
    assert (await surge_at(market, HERE))[1] == 2.0  # a quote reads the store
    # Younger than the interval: the same answer, and nothing read behind it.
    world.clock.advance(refresh_ms - 1)
    assert await look(world) == (1.0, 0, 1.0, True, t0)
    await market.snapshots.settled()
    assert await look(world) == (1.0, 0, 1.0, True, t0)
    # An interval old: still answered (no read waits), and read again behind it.
    world.clock.advance(1)
    t1 = world.clock.now
    assert await look(world) == (1.0, 0, 1.0, True, t0)
    assert await look(world) == (1.0, 0, 1.0, True, t0)
    await market.snapshots.settled()
    assert await look(world) == (2.0, 1, 2.0, False, t1)


async def test_a_snapshot_too_old_is_not_answered(world: World) -> None:
    market = world.deps.market
    await make_quote(world.deps, rider("u1"), HERE, None)
    assert (await look(world))[:4] == (1.0, 0, 1.0, True)
    await change_everything(world)
    world.clock.advance(market.snapshots.max_stale_ms)
    assert await look(world) == (2.0, 1, 2.0, False, world.clock.now)


async def test_areas_and_products_are_kept_apart(world: World) -> None:
    await world.driver_at("d1", 10)
    await world.driver_at("d2", 1_200)  # another cell, 1.2 km north
    every = await market_ops.view_and_switch(world.deps, OPS, HERE, 500)
    wider = await market_ops.view_and_switch(world.deps, OPS, HERE, 1_500)
    xl = await market_ops.view_and_switch(world.deps, OPS, HERE, 500, "xl")
    assert len(every.cells) == 1 and len(wider.cells) == 2
    assert every.cells[0].supply == 1 and xl.cells == []  # d1 drives economy
    assert len(world.deps.market.snapshots) == 3
