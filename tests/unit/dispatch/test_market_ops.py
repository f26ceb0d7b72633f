"""Quotes and the operators' controls on the embedded backend: a quote prices a trip with
its cell's surge, one rider's flood of quotes does not move the surge, pins and the switch
win over the computed multiplier, and cell groups are bounded."""

from __future__ import annotations

import pytest
from h3.api import basic_str as h3

from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.service_layer import market_ops
from dispatch.service_layer.errors import Forbidden, InvalidRequest
from dispatch.service_layer.market import surge_at
from dispatch.service_layer.quotes import make_quote
from dispatch.service_layer.surge_job import surge_round
from geoindex import Position
from tests.unit.dispatch.conftest import PICKUP, World, rider

HERE = LatLng(*PICKUP)
ELSEWHERE = LatLng(PICKUP[0] + 0.05, PICKUP[1])  # another res-8 cell
OPS = Principal(Role.OPS, "o1")


async def rounds(world: World, n: int = 6) -> None:
    held: dict[int, int] = {}
    for _ in range(n):
        await surge_round(world.deps, "test", held)


async def surge_up(world: World, riders: int) -> None:
    """Quotes from `riders` riders, then enough rounds for the surge to settle."""
    for i in range(riders):
        await make_quote(world.deps, rider(f"crowd{i}"), HERE, None)
    await rounds(world)


async def test_a_quote_prices_the_trip_with_the_cells_surge(world: World) -> None:
    await world.driver_at("d1", 500)
    await surge_up(world, 40)
    quote = await make_quote(world.deps, rider("r1"), HERE, ELSEWHERE)
    assert quote.surge == world.deps.market.config.policy.cap
    assert quote.pickup_eta_s is not None and quote.pickup_eta_s > 0
    assert quote.estimate is not None and quote.estimate.low < quote.estimate.high
    assert quote.expires_at == world.clock.now + world.deps.market.config.quote_ttl_ms


async def test_one_riders_quote_flood_does_not_move_the_surge(world: World) -> None:
    for _ in range(500):
        await make_quote(world.deps, rider("flooder"), HERE, None)
        world.clock.advance(50)  # 25 s: five buckets
    held: dict[int, int] = {}
    for _ in range(6):
        await surge_round(world.deps, "test", held)
    assert (await surge_at(world.deps.market, HERE))[1] == 1.0
    # The same number of asks from distinct riders does.
    await surge_up(world, 40)
    assert (await surge_at(world.deps.market, HERE))[1] > 1.0


async def test_a_pin_wins_and_unpinning_gives_the_computed_multiplier_back(world: World) -> None:
    cell = h3.latlng_to_cell(HERE.lat, HERE.lng, 8)
    count, until = await market_ops.pin(world.deps, OPS, [cell], 1.3, 60, 5_000)
    assert count == 1 and until == world.clock.now + 60_000
    await rounds(world, 1)
    assert (await surge_at(world.deps.market, HERE))[1] == 1.3
    await market_ops.pin(world.deps, OPS, [cell], None, 60, 5_000)
    await rounds(world, 1)
    assert (await surge_at(world.deps.market, HERE))[1] == 1.0


async def test_a_pin_runs_out(world: World) -> None:
    cell = h3.latlng_to_cell(HERE.lat, HERE.lng, 8)
    await market_ops.pin(world.deps, OPS, [cell], 2.0, 10, 5_000)
    await rounds(world, 1)
    assert (await surge_at(world.deps.market, HERE))[1] == 2.0
    world.clock.advance(10_000)
    await rounds(world, 1)
    assert (await surge_at(world.deps.market, HERE))[1] == 1.0


async def test_surge_off_quotes_one_but_keeps_pins(world: World) -> None:
    await surge_up(world, 40)
    pinned = h3.latlng_to_cell(ELSEWHERE.lat, ELSEWHERE.lng, 8)
    await market_ops.pin(world.deps, OPS, [pinned], 1.5, 60, 5_000)
    await market_ops.set_enabled(world.deps, OPS, False)
    await rounds(world, 1)
    assert (await surge_at(world.deps.market, HERE))[1] == 1.0
    assert (await surge_at(world.deps.market, ELSEWHERE))[1] == 1.5
    await market_ops.set_enabled(world.deps, OPS, True)
    await rounds(world, 1)
    assert (await surge_at(world.deps.market, HERE))[1] == world.deps.market.config.policy.cap


async def test_a_coarser_cell_stands_for_its_market_cells(world: World) -> None:
    parent = h3.latlng_to_cell(HERE.lat, HERE.lng, 6)
    assert len(market_ops.expand(world.deps, [parent], 5_000)) == 49
    with pytest.raises(InvalidRequest):
        market_ops.expand(world.deps, [parent], 48)
    with pytest.raises(InvalidRequest):  # finer than the market
        market_ops.expand(world.deps, [h3.latlng_to_cell(HERE.lat, HERE.lng, 9)], 5_000)
    with pytest.raises(InvalidRequest):  # coarser than a region
        market_ops.expand(world.deps, [h3.latlng_to_cell(HERE.lat, HERE.lng, 4)], 10**6)
    with pytest.raises(InvalidRequest):
        market_ops.expand(world.deps, ["8f1f1d489800001"], 5_000)


async def test_only_ops_tokens_steer_or_read_the_market(world: World) -> None:
    with pytest.raises(Forbidden):
        await market_ops.pin(world.deps, rider("r1"), [], 1.5, 60, 5_000)
    with pytest.raises(Forbidden):
        await market_ops.set_enabled(world.deps, rider("r1"), False)
    with pytest.raises(Forbidden):
        await market_ops.view(world.deps, rider("r1"), HERE, 100)
    with pytest.raises(InvalidRequest):
        await market_ops.view(world.deps, OPS, HERE, 5_001)
    with pytest.raises(Forbidden):
        await make_quote(world.deps, OPS, HERE, None)


async def test_drivers_two_rings_out_damp_the_ring_around_a_spike(world: World) -> None:
    """A ring-1 cell is priced by the supply of its own disk, which reaches two rings out
    from the spike: drivers there must count."""
    hot = h3.latlng_to_cell(HERE.lat, HERE.lng, 8)
    near = h3.grid_ring(hot, 1)[0]
    outer = [c for c in h3.grid_ring(hot, 2) if h3.grid_distance(c, near) == 1]
    assert outer
    await surge_up(world, 40)
    lonely = (await surge_at(world.deps.market, LatLng(*h3.cell_to_latlng(near))))[1]
    for i, cell in enumerate(outer):
        lat, lng = h3.cell_to_latlng(cell)
        await world.deps.index.upsert(
            [Position(f"o{i}-{k}", lat, lng + k * 1e-5, world.clock.now) for k in range(20)]
        )
    await rounds(world, 8)
    helped = (await surge_at(world.deps.market, LatLng(*h3.cell_to_latlng(near))))[1]
    assert helped < lonely
