"""Batched matching on the embedded backend with a hand-moved clock: requests wait as
`searching`, a window is solved as one assignment, declines go back to the queue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dispatch.bootstrap import bootstrap
from dispatch.domain.drivers import DriverStatus
from dispatch.domain.geo import LatLng
from dispatch.domain.rides import RideStatus
from dispatch.service_layer import ride_steps
from dispatch.service_layer.batching import solve_region, window_round
from dispatch.service_layer.match_window import Queued
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from dispatch.settings import Settings
from tests.fake_clock import FakeClock
from tests.unit.dispatch.conftest import PICKUP, Recorder, World, driver, rider

WINDOW_MS = 2_000


@pytest.fixture
async def batched() -> AsyncIterator[World]:
    clock = FakeClock()
    seen = Recorder()
    settings = Settings(match_window_ms=WINDOW_MS, match_max_wait_s=30)
    async with bootstrap(settings, clock=clock, observer=seen) as runtime:
        yield World(runtime.deps, clock, seen)


def north(metres: float) -> LatLng:
    return LatLng(PICKUP[0] + metres / 111_195.0, PICKUP[1])


async def ask(world: World, who: str, at: LatLng | None = None):  # type: ignore[no-untyped-def]
    at = at or LatLng(*PICKUP)
    return await request_ride(world.deps, rider(who), new_ride_id(who, None), at, None)


async def solve(world: World, holder: str = "i1") -> None:
    world.clock.advance(WINDOW_MS)
    await window_round(world.deps, holder, {})


async def test_a_request_searches_until_its_window_is_solved(batched: World) -> None:
    await batched.driver_at("d1", 300)
    ride = await ask(batched, "u1")
    assert (ride.status, ride.driver_id, ride.attempts) == (RideStatus.SEARCHING, None, 0)
    assert (await batched.deps.drivers.get("d1")).status is DriverStatus.AVAILABLE
    await solve(batched)
    ride = await batched.deps.rides.get(ride.id)
    assert ride is not None
    assert (ride.status, ride.driver_id, ride.attempts) == (RideStatus.OFFERED, "d1", 1)
    assert ride.eta_s == await batched.deps.eta.eta_s(
        ride.pickup, ride.pickup_distance_m, batched.clock.now
    )
    rec = await batched.deps.drivers.get("d1")
    assert (rec.status, rec.fence) == (DriverStatus.RESERVED, ride.fence)


async def test_the_window_beats_nearest_first_when_supply_is_tight(batched: World) -> None:
    # a at 0 m, b 1,500 m north; d1 between them but nearer a, d2 1 km south of a.
    await batched.driver_at("d1", 600)
    await batched.driver_at("d2", -1_000)
    a = await ask(batched, "a", north(0))
    b = await ask(batched, "b", north(1_500))
    await solve(batched)
    got = {r: (await batched.deps.rides.get(x.id)).driver_id for r, x in (("a", a), ("b", b))}  # type: ignore[union-attr]
    assert got == {"a": "d2", "b": "d1"}  # nearest-first would give b a 2.5 km pickup


async def test_a_declined_offer_reenters_the_next_window_without_the_decliner(
    batched: World,
) -> None:
    await batched.driver_at("near", 200)
    await batched.driver_at("far", 900)
    ride = await ask(batched, "u1")
    await solve(batched)
    await ride_steps.decline(batched.deps, driver("near"), ride.id)
    back = await batched.deps.rides.get(ride.id)
    assert back is not None
    assert (back.status, back.declined) == (RideStatus.SEARCHING, ("near",))
    assert (await batched.deps.drivers.get("near")).status is DriverStatus.AVAILABLE
    await solve(batched)
    again = await batched.deps.rides.get(ride.id)
    assert again is not None
    assert (again.status, again.driver_id, again.attempts) == (RideStatus.OFFERED, "far", 2)


async def test_an_offer_timeout_sends_the_ride_back_and_attempts_run_out(batched: World) -> None:
    from dispatch.service_layer.deadlines import sweep_once

    ride = await ask(batched, "u1")
    for attempt in range(1, 4):
        for i in range(4):  # fresh fixes: the drivers are still around
            await batched.driver_at(f"d{i}", 100 * (i + 1))
        await solve(batched)
        offered = await batched.deps.rides.get(ride.id)
        assert offered is not None
        assert (offered.status, offered.attempts) == (RideStatus.OFFERED, attempt)
        batched.clock.advance(batched.deps.policy.offer_timeout_ms)
        await sweep_once(batched.deps)
    final = await batched.deps.rides.get(ride.id)
    assert final is not None
    assert final.status is RideStatus.NO_DRIVER  # three attempts, the policy's limit
    assert len(set(final.declined)) == 3


async def test_a_searching_ride_may_be_cancelled_and_is_never_offered(batched: World) -> None:
    await batched.driver_at("d1", 300)
    ride = await ask(batched, "u1")
    cancelled = await ride_steps.cancel(batched.deps, rider("u1"), ride.id)
    assert cancelled.status is RideStatus.CANCELLED
    await solve(batched)
    assert (await batched.deps.drivers.get("d1")).status is DriverStatus.AVAILABLE
    region = batched.deps.batching.region_of(ride.pickup)  # type: ignore[union-attr]
    assert (await batched.deps.batching.store.pending(region, 10)) == Queued([], [])  # type: ignore[union-attr]


async def test_a_ride_without_a_driver_ends_no_driver_after_the_maximum_wait(
    batched: World,
) -> None:
    ride = await ask(batched, "u1")
    await solve(batched)
    assert (await batched.deps.rides.get(ride.id)).status is RideStatus.SEARCHING  # type: ignore[union-attr]
    batched.clock.advance(30_000)
    await solve(batched)
    assert (await batched.deps.rides.get(ride.id)).status is RideStatus.NO_DRIVER  # type: ignore[union-attr]
    # It stops counting against the rider: two more may be requested.
    await ask(batched, "u1-again")


async def test_a_refused_reservation_leaves_the_rider_for_the_next_window(batched: World) -> None:
    await batched.driver_at("d1", 300)
    ride = await ask(batched, "u1")
    # Someone else reserves d1 between the search and the reservation.
    now = batched.clock.now + WINDOW_MS
    await batched.deps.drivers.reserve("d1", "other", now, now + 60_000)
    await solve(batched)
    assert (await batched.deps.rides.get(ride.id)).status is RideStatus.SEARCHING  # type: ignore[union-attr]
    assert batched.seen.windows[-1].refused == 1
    assert batched.seen.windows[-1].carried == 1


async def test_one_instance_solves_a_region_until_its_lease_lapses(batched: World) -> None:
    await batched.driver_at("d1", 300)
    ride = await ask(batched, "u1")
    store = batched.deps.batching.store  # type: ignore[union-attr]
    region = batched.deps.batching.region_of(ride.pickup)  # type: ignore[union-attr]
    lease_ms = batched.deps.batching.config.lease_ms  # type: ignore[union-attr]
    first = await store.take_lease(region, "i1", lease_ms)
    assert first is not None
    assert await store.take_lease(region, "i2", lease_ms) is None
    await window_round(batched.deps, "i2", {})  # not its region: nothing solved
    assert (await batched.deps.rides.get(ride.id)).status is RideStatus.SEARCHING  # type: ignore[union-attr]
    batched.clock.advance(lease_ms)  # i1 died: its lease lapses
    second = await store.take_lease(region, "i2", lease_ms)
    assert second is not None and second > first
    # The old holder's window, solved late under its old fence, changes nothing.
    stale = await solve_region(batched.deps, region, "i1", first)
    assert stale.matched == 0
    await window_round(batched.deps, "i2", {})
    assert (await batched.deps.rides.get(ride.id)).status is RideStatus.OFFERED  # type: ignore[union-attr]


async def test_a_rider_near_a_region_border_is_offered_a_driver_across_it(batched: World) -> None:
    from h3.api import basic_str as h3

    res = batched.deps.batching.region_res  # type: ignore[union-attr]
    here = LatLng(*PICKUP)
    home = h3.latlng_to_cell(here.lat, here.lng, res)
    # Walk north until the region changes: the driver stands just across the border.
    step = 0.0
    while h3.latlng_to_cell(here.lat + step / 111_195.0, here.lng, res) == home:
        step += 50
    rider_at = LatLng(here.lat + (step - 100) / 111_195.0, here.lng)
    await batched.driver_at("across", step + 100)
    ride = await ask(batched, "u1", rider_at)
    await solve(batched)
    got = await batched.deps.rides.get(ride.id)
    assert got is not None and got.driver_id == "across"


async def test_searching_rides_count_against_the_riders_cap(batched: World) -> None:
    from dispatch.service_layer.errors import ActiveRideLimit

    first = await request_ride(batched.deps, rider("u1"), "r_1", LatLng(*PICKUP), None)
    await request_ride(batched.deps, rider("u1"), "r_2", LatLng(*PICKUP), None)
    with pytest.raises(ActiveRideLimit):
        await request_ride(batched.deps, rider("u1"), "r_3", LatLng(*PICKUP), None)
    await ride_steps.cancel(batched.deps, rider("u1"), first.id)
    third = await request_ride(batched.deps, rider("u1"), "r_3", LatLng(*PICKUP), None)
    assert third.status is RideStatus.SEARCHING


async def test_the_market_counts_a_batched_request_once_with_its_outcome(batched: World) -> None:
    from dispatch.service_layer.market import cell_of

    market = batched.deps.market
    cell, region = cell_of(market.config, LatLng(*PICKUP))

    window, products = market.config.window, market.config.products

    async def counts():  # type: ignore[no-untyped-def]
        now = batched.clock.now
        return (await market.store.counts([region], window, now, products))[region][cell]

    await batched.driver_at("d1", 300)
    await ask(batched, "u1")
    await ask(batched, "u2")
    now = batched.clock.now
    assert not (await market.store.counts([region], window, now, products))[region]  # searching
    await solve(batched)  # u1 or u2 offered d1, the other waits
    offered = await counts()
    assert (offered.requests, offered.no_driver, offered.etas) == (1, 0, 1)
    batched.clock.advance(30_000)
    await solve(batched)  # the other gave up
    ended = await counts()
    assert (ended.requests, ended.no_driver) == (2, 1)


async def test_riders_whose_candidates_all_went_to_others_draw_more_in_the_same_window() -> None:
    # Two candidates a rider: three riders at one spot all draw d1 and d2 first, so the
    # third's candidates are both taken; it draws more (d3, d4) and is offered d3 now,
    # not a window later.
    clock = FakeClock()
    seen = Recorder()
    settings = Settings(match_window_ms=WINDOW_MS, match_max_wait_s=30, match_candidates=2)
    async with bootstrap(settings, clock=clock, observer=seen) as runtime:
        world = World(runtime.deps, clock, seen)
        for i, north_m in enumerate((100, 200, 300, 400)):
            await world.driver_at(f"d{i + 1}", north_m)
        asked = [await ask(world, f"u{i}") for i in range(3)]
        await solve(world)
        got = [await world.deps.rides.get(r.id) for r in asked]
        assert all(r is not None and r.status is RideStatus.OFFERED for r in got)
        assert sorted(r.driver_id for r in got if r is not None) == ["d1", "d2", "d3"]
        assert (seen.windows[-1].matched, seen.windows[-1].widened) == (3, 1)
        assert (await world.deps.drivers.get("d4")).status is DriverStatus.AVAILABLE
        # Both steps' pairs were noted as holds and are settled: nothing is left behind.
        batching = world.deps.batching
        assert batching is not None
        region = batching.region_of(asked[0].pickup)
        assert await batching.store.pending(region, 10) == Queued([], [])


async def test_a_rider_is_not_drawn_wider_when_its_search_ended_short_of_k(batched: World) -> None:
    # One driver for two riders: the loser's search found fewer than k drivers, so there
    # is no one further to find and nothing is searched again.
    await batched.driver_at("d1", 300)
    await ask(batched, "u1")
    await ask(batched, "u2")
    await solve(batched)
    assert (batched.seen.windows[-1].matched, batched.seen.windows[-1].widened) == (1, 0)


async def test_a_paced_round_spreads_its_held_regions_windows_over_the_spread(
    batched: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from dispatch.service_layer import batching

    # Two regions with a rider each: far enough apart to be in different regions.
    await ask(batched, "u1")
    await ask(batched, "u2", north(60_000))
    started: list[float] = []
    solve_one = batching.solve_region

    async def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.append(time.monotonic())
        return await solve_one(*args, **kwargs)

    monkeypatch.setattr(batching, "solve_region", timed)
    held: dict[int, int] = {}
    pacing = batching.Pacing(0.4)
    batched.clock.advance(WINDOW_MS)
    await window_round(batched.deps, "i1", held, pacing)
    # Regions not held yet go at once, one after the other.
    assert len(held) == 2 and len(started) == 2 and started[1] - started[0] < 0.1
    started.clear()
    batched.clock.advance(WINDOW_MS)
    pacing.last.clear()  # as if the regions' windows had never run: slots alone
    began = time.monotonic()
    await window_round(batched.deps, "i1", held, pacing)
    assert len(started) == 2
    assert started[0] - began < 0.1  # the first region at once
    assert started[1] - began >= 0.2  # the second half the spread later
    # A region is never kept waiting more than the spread after its last window: with
    # the first region's last window long ago and the second's just now, both go at once
    # (the second's slot is later than the first's, and its last + spread later still).
    started.clear()
    first, second = sorted(held)
    pacing.last = {first: time.monotonic() - 10, second: time.monotonic() - 0.35}
    began = time.monotonic()
    await window_round(batched.deps, "i1", held, pacing)
    assert len(started) == 2 and started[1] - began < 0.15


class _CountedRides:
    """The rides store, counting reads of one ride."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self._inner = inner
        self.gets = 0

    async def get(self, ride_id: str):  # type: ignore[no-untyped-def]
        self.gets += 1
        return await self._inner.get(ride_id)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._inner, name)


async def test_a_held_request_answers_with_its_windows_offer_without_reading_the_ride(
    batched: World,
) -> None:
    import asyncio
    from dataclasses import replace

    from dispatch.service_layer import ride_wait

    await batched.driver_at("d1", 300)
    ride = await ask(batched, "u1")
    counted = _CountedRides(batched.deps.rides)
    held = asyncio.create_task(
        ride_wait.until_matched(replace(batched.deps, rides=counted), ride.id, 5.0)
    )
    await asyncio.sleep(0.05)  # subscribed
    await solve(batched)
    answered = await asyncio.wait_for(held, 1.0)
    assert answered is not None
    assert (answered.status, answered.driver_id) == (RideStatus.OFFERED, "d1")
    assert counted.gets == 0  # the notice carried it


async def test_a_change_before_the_request_listened_is_found_by_its_read(
    batched: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from dispatch.service_layer import ride_wait

    await batched.driver_at("d1", 300)
    ride = await ask(batched, "u1")
    await solve(batched)  # offered before the request listens: its notice is gone
    # A window and NOTICE_LATE_S without a notice: 0.1 s here.
    monkeypatch.setattr(ride_wait, "NOTICE_LATE_S", 0.1 - WINDOW_MS / 1000)
    counted = _CountedRides(batched.deps.rides)
    answered = await ride_wait.until_matched(replace(batched.deps, rides=counted), ride.id, 5.0)
    assert answered is not None and answered.status is RideStatus.OFFERED
    assert counted.gets == 1


async def test_a_held_request_that_heard_nothing_answers_the_stored_ride_at_its_end(
    batched: World,
) -> None:
    from dataclasses import replace

    from dispatch.service_layer import ride_wait

    ride = await ask(batched, "u1")  # no driver: it stays searching
    counted = _CountedRides(batched.deps.rides)
    answered = await ride_wait.until_matched(replace(batched.deps, rides=counted), ride.id, 0.05)
    assert answered is not None and answered.status is RideStatus.SEARCHING
    assert answered.id == ride.id and counted.gets == 1
