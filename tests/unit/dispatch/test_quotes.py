"""Quotes on the embedded backend: a ride request locks a quote's multiplier while the
quote lives, refuses it afterwards or for anyone else or another pickup cell (reserving
nobody), and one rider's flood of quotes does not move the surge."""

from __future__ import annotations

import pytest

from dispatch.domain.eta import EtaParams
from dispatch.domain.geo import LatLng
from dispatch.domain.quotes import QuoteExpired, QuoteMismatch
from dispatch.domain.rides import RideStatus
from dispatch.service_layer.errors import BackendUnavailable
from dispatch.service_layer.market import area_view, surge_at
from dispatch.service_layer.quotes import make_quote
from dispatch.service_layer.ride_requests import request_ride, request_ride_once
from dispatch.service_layer.surge_job import surge_round
from tests.unit.dispatch.conftest import PICKUP, World, rider

HERE = LatLng(*PICKUP)
ELSEWHERE = LatLng(PICKUP[0] + 0.05, PICKUP[1])  # another res-8 cell


async def surge_up(world: World, riders: int) -> None:
    """Quotes from `riders` riders, then enough rounds for the surge to settle."""
    for i in range(riders):
        await make_quote(world.deps, rider(f"crowd{i}"), HERE, None)
    held: dict[int, int] = {}
    for _ in range(6):
        await surge_round(world.deps, "test", held)


async def test_a_ride_keeps_the_quoted_multiplier(world: World) -> None:
    await world.driver_at("d1", 500)
    await surge_up(world, 40)
    quote = await make_quote(world.deps, rider("r1"), HERE, None)
    # The surge falls meanwhile; the quote still holds.
    world.clock.advance(world.deps.market.config.window.window_ms + 1)
    held: dict[int, int] = {}
    for _ in range(6):
        await surge_round(world.deps, "test", held)
    assert (await surge_at(world.deps.market, HERE))[1] == 1.0
    world.clock.advance(-world.deps.market.config.window.window_ms)  # back within its life
    ride = await request_ride(world.deps, rider("r1"), "r_" + "1" * 32, HERE, None, quote.id)
    assert ride.status is RideStatus.OFFERED
    assert ride.surge == quote.surge == world.deps.market.config.policy.cap
    assert (await world.deps.rides.get(ride.id)) == ride


async def test_an_expired_quote_is_refused_and_nothing_is_reserved(world: World) -> None:
    await world.driver_at("d1", 500)
    quote = await make_quote(world.deps, rider("r1"), HERE, None)
    world.clock.advance(world.deps.market.config.quote_ttl_ms)
    await world.driver_at("d1", 500)  # still fresh
    with pytest.raises(QuoteExpired):
        await request_ride(world.deps, rider("r1"), "r_" + "2" * 32, HERE, None, quote.id)
    assert (await world.deps.drivers.get("d1")).ride_id is None
    assert await world.deps.rides.get("r_" + "2" * 32) is None
    with pytest.raises(QuoteExpired):  # an id nobody issued looks the same
        await request_ride(world.deps, rider("r1"), "r_" + "3" * 32, HERE, None, "q_" + "0" * 32)


@pytest.mark.parametrize(
    ("who", "pickup", "product"),
    [("r2", HERE, None), ("r1", ELSEWHERE, None), ("r1", HERE, "xl")],
    ids=["another rider", "another cell", "another product"],
)
async def test_a_quote_for_someone_or_somewhere_or_something_else_is_refused(
    world: World, who: str, pickup: LatLng, product: str | None
) -> None:
    await world.driver_at("d1", 500)
    quote = await make_quote(world.deps, rider("r1"), HERE, None)  # economy, the default
    with pytest.raises(QuoteMismatch):
        await request_ride(
            world.deps, rider(who), "r_" + "4" * 32, pickup, None, quote.id, product=product
        )
    assert (await world.deps.drivers.get("d1")).ride_id is None


async def test_requests_and_no_driver_outcomes_are_counted(world: World) -> None:
    await world.driver_at("d1", 500)
    answer = await request_ride_once(world.deps, rider("r1"), HERE, None, None, lambda r: b"")
    assert answer == b""
    await request_ride(world.deps, rider("r2"), "r_" + "5" * 32, HERE, None)  # nobody left
    cells = await area_view(world.deps.market, world.deps.index, HERE, 1_000, world.clock.now)
    [cell] = [c for c in cells if c.requests]
    assert (cell.requests, cell.no_driver_rate) == (2, 0.5)
    assert cell.mean_eta_s is not None and cell.demand_per_min == 2.0


async def test_a_quotes_pickup_eta_follows_the_learned_model(world: World) -> None:
    await world.driver_at("d1", 500)
    [nearest] = await world.deps.index.nearest(HERE.lat, HERE.lng, 1, 5_000)
    metres, eta = nearest.distance_m, world.deps.eta
    before = await make_quote(world.deps, rider("r1"), HERE, None)
    assert before.pickup_eta_s == EtaParams().eta_s(metres) == 78  # 500 m x 1.3, 30 km/h
    # Pickups here take twice what the default model says: slow streets, by a path of
    # 1.5 times the straight line.
    for _ in range(40):
        await eta.observe_pickup(HERE, 1_000, 2 * 156_000, world.clock.now, path_m=1_500)
    learned = await eta.params(HERE, world.clock.now)
    assert learned.observations == 40 and learned.eta_s(metres) > 140
    after = await make_quote(world.deps, rider("r1"), HERE, None)
    assert after.pickup_eta_s == learned.eta_s(metres)


async def test_a_lost_count_does_not_fail_a_stored_ride(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*_: object) -> None:
        raise BackendUnavailable("the market's store is down")

    monkeypatch.setattr(world.deps.market.store, "count", down)
    await world.driver_at("d1", 500)
    ride = await request_ride(world.deps, rider("r1"), "r_" + "6" * 32, HERE, None)
    assert ride.status is RideStatus.OFFERED
    assert await world.deps.rides.get(ride.id) == ride
