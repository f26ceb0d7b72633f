"""Ride use cases end to end on the embedded backend: matching, offers, the lifecycle."""

from __future__ import annotations

import pytest

from dispatch.domain.drivers import DriverStatus
from dispatch.domain.errors import InvalidTransition, NotParticipant, OfferExpired
from dispatch.domain.geo import LatLng
from dispatch.domain.rides import RideStatus
from dispatch.service_layer import deadlines, drivers, ride_steps
from dispatch.service_layer.errors import Forbidden, NotFound
from dispatch.service_layer.ride_requests import new_ride_id, request_ride

from .conftest import PICKUP, World, driver, rider

HERE = LatLng(*PICKUP)


async def ask(world: World, who: str = "u1", key: str | None = None):  # type: ignore[no-untyped-def]
    return await request_ride(world.deps, rider(who), new_ride_id(who, key), HERE, None)


async def test_the_nearest_driver_is_reserved_and_offered(world: World) -> None:
    await world.driver_at("far", 800)
    await world.driver_at("near", 200)
    ride = await ask(world)
    assert (ride.status, ride.driver_id, ride.attempts) == (RideStatus.OFFERED, "near", 1)
    assert ride.pickup_distance_m == pytest.approx(200, abs=2)
    assert ride.eta_s == await world.deps.eta.eta_s(HERE, ride.pickup_distance_m, world.clock.now)
    rec = await world.deps.drivers.get("near")
    assert (rec.status, rec.ride_id, rec.fence) == (DriverStatus.RESERVED, ride.id, ride.fence)
    assert [n.driver_id for n in await world.deps.index.nearest(*PICKUP, 10, 5000)] == ["far"]


async def test_the_radius_widens_in_steps_up_to_the_maximum(world: World) -> None:
    await world.driver_at("d4k", 4_000)
    ride = await ask(world)
    assert ride.driver_id == "d4k"
    await world.driver_at("d6k", 6_000)
    assert (await ask(world, "u2")).status is RideStatus.NO_DRIVER


async def test_no_driver_at_all_is_a_clear_no_driver_ride(world: World) -> None:
    ride = await ask(world)
    assert ride.status is RideStatus.NO_DRIVER and ride.driver_id is None
    assert (await world.deps.rides.get(ride.id)) == ride


async def test_a_stale_driver_is_never_dispatched(world: World) -> None:
    await world.driver_at("old", 100)
    world.clock.advance(world.deps.index.ttl_ms + 1)
    assert (await ask(world)).status is RideStatus.NO_DRIVER
    assert (await world.deps.drivers.get("old")).status is DriverStatus.AVAILABLE


async def test_the_whole_ride_frees_the_driver_at_its_latest_position(world: World) -> None:
    await world.driver_at("d1", 300)
    ride = await ask(world)
    for step in (ride_steps.accept, ride_steps.arrive, ride_steps.start):
        ride = await step(world.deps, driver("d1"), ride.id)
    assert (await world.deps.drivers.get("d1")).status is DriverStatus.ON_RIDE
    world.clock.advance(1_000)
    await world.driver_at("d1", 2_000)
    done = await ride_steps.complete(world.deps, driver("d1"), ride.id)
    assert done.status is RideStatus.COMPLETED
    assert (await world.deps.drivers.get("d1")).status is DriverStatus.AVAILABLE
    [hit] = await world.deps.index.nearest(*PICKUP, 10, 5000)
    assert hit.driver_id == "d1" and hit.distance_m == pytest.approx(2_000, abs=5)
    assert [r.status for r in world.seen.rides] == [
        RideStatus.OFFERED,
        RideStatus.ACCEPTED,
        RideStatus.ARRIVED,
        RideStatus.IN_PROGRESS,
        RideStatus.COMPLETED,
    ]


async def test_a_decline_offers_the_next_driver_and_never_the_decliner(world: World) -> None:
    await world.driver_at("a", 100)
    await world.driver_at("b", 200)
    ride = await ask(world)
    assert ride.driver_id == "a"
    after = await ride_steps.decline(world.deps, driver("a"), ride.id)
    assert (after.driver_id, after.attempts, after.declined) == ("b", 2, ("a",))
    assert (await world.deps.drivers.get("a")).status is DriverStatus.AVAILABLE
    final = await ride_steps.decline(world.deps, driver("b"), ride.id)
    assert final.status is RideStatus.NO_DRIVER  # "a" is free and near, but declined
    assert (await world.deps.drivers.get("b")).status is DriverStatus.AVAILABLE


async def test_after_max_attempts_the_ride_is_no_driver(world: World) -> None:
    for i in range(5):
        await world.driver_at(f"d{i}", 100 * (i + 1))
    ride = await ask(world)
    for expected in ("d0", "d1", "d2"):
        assert ride.driver_id == expected
        ride = await ride_steps.decline(world.deps, driver(expected), ride.id)
    assert ride.status is RideStatus.NO_DRIVER and ride.declined == ("d0", "d1", "d2")


async def test_an_unanswered_offer_times_out_to_the_next_driver(world: World) -> None:
    await world.driver_at("a", 100)
    await world.driver_at("b", 200)
    ride = await ask(world)
    world.clock.advance(world.deps.policy.offer_timeout_ms - 1)
    await deadlines.sweep_once(world.deps)
    assert (await world.deps.rides.get(ride.id)).driver_id == "a"  # type: ignore[union-attr]
    world.clock.advance(1)
    await world.driver_at("b", 200)  # keep b fresh
    await deadlines.sweep_once(world.deps)
    moved = await world.deps.rides.get(ride.id)
    assert moved is not None and moved.driver_id == "b" and moved.declined == ("a",)
    with pytest.raises(NotParticipant):
        await ride_steps.accept(world.deps, driver("a"), ride.id)


async def test_accepting_after_the_offer_expired_is_refused(world: World) -> None:
    await world.driver_at("a", 100)
    ride = await ask(world)
    world.clock.advance(world.deps.policy.offer_timeout_ms)
    with pytest.raises(OfferExpired):
        await ride_steps.accept(world.deps, driver("a"), ride.id)


async def test_an_orphaned_reservation_is_freed_when_its_lease_runs_out(world: World) -> None:
    await world.driver_at("a", 100)
    now = world.clock.now
    # As if an instance reserved "a" and died before storing the ride.
    rec = await world.deps.drivers.reserve("a", "r_lost", now, now + world.deps.lease_ms)
    assert rec is not None
    await world.deps.deadlines.schedule("l:a", now + world.deps.lease_ms)
    await world.deps.index.set_available("a", False)
    world.clock.advance(world.deps.lease_ms)
    await world.driver_at("a", 100)
    await deadlines.sweep_once(world.deps)
    assert (await world.deps.drivers.get("a")).status is DriverStatus.AVAILABLE
    assert (await ask(world)).driver_id == "a"


async def test_a_refused_reservations_timers_fire_into_nothing(world: World) -> None:
    """A new ride's timers go with each reservation, before its answer: a refused one
    leaves a lease check for a driver someone else holds, and it changes nothing there
    before that holder's lease runs out."""
    await world.driver_at("a", 100)
    await world.driver_at("b", 200)
    now = world.clock.now
    lease_until = now + world.deps.lease_ms
    assert await world.deps.drivers.reserve("a", "r_other", now, lease_until) is not None
    ride = await ask(world)  # "a" is nearer, refused: "b"
    assert ride.driver_id == "b"
    ride = await ride_steps.accept(world.deps, driver("b"), ride.id)
    world.clock.advance(world.deps.lease_ms - 5_000)  # the lease checks are due
    await world.driver_at("a", 100)
    await world.driver_at("b", 200)
    due = await world.deps.deadlines.claim(world.clock.now, 100, 5_000)
    assert "l:a" in [c.item for c in due]  # set with the refused reservation
    for c in due:  # as the sweep handles them
        again = await deadlines.handle(world.deps, c.item)
        if again is None:
            await world.deps.deadlines.done(c)
        else:
            await world.deps.deadlines.again(c, again)
    held = await world.deps.drivers.get("a")
    assert (held.status, held.ride_id) == (DriverStatus.RESERVED, "r_other")
    assert (await world.deps.drivers.get("b")).status is DriverStatus.ON_RIDE
    world.clock.advance(5_000)  # "a"'s holder never came back: its lease is over
    await world.driver_at("a", 100)
    await deadlines.sweep_once(world.deps)
    assert (await world.deps.drivers.get("a")).status is DriverStatus.AVAILABLE
    after = await world.deps.rides.get(ride.id)
    assert after is not None and after.status is RideStatus.ACCEPTED and after.driver_id == "b"


async def test_cancel_by_the_rider_frees_the_driver(world: World) -> None:
    await world.driver_at("a", 100)
    ride = await ask(world)
    ride = await ride_steps.accept(world.deps, driver("a"), ride.id)
    cancelled = await ride_steps.cancel(world.deps, rider("u1"), ride.id)
    assert cancelled.status is RideStatus.CANCELLED and cancelled.cancelled_by == "rider"
    assert (await world.deps.drivers.get("a")).status is DriverStatus.AVAILABLE


async def test_a_ride_in_progress_cannot_be_cancelled(world: World) -> None:
    await world.driver_at("a", 100)
    ride = await ask(world)
    for step in (ride_steps.accept, ride_steps.arrive, ride_steps.start):
        ride = await step(world.deps, driver("a"), ride.id)
    with pytest.raises(InvalidTransition):
        await ride_steps.cancel(world.deps, rider("u1"), ride.id)
    with pytest.raises(InvalidTransition):
        await ride_steps.cancel(world.deps, driver("a"), ride.id)


async def test_steps_from_the_wrong_state_are_refused_and_change_nothing(world: World) -> None:
    await world.driver_at("a", 100)
    ride = await ask(world)
    with pytest.raises(InvalidTransition):
        await ride_steps.start(world.deps, driver("a"), ride.id)
    with pytest.raises(InvalidTransition):
        await ride_steps.complete(world.deps, driver("a"), ride.id)
    assert await world.deps.rides.get(ride.id) == ride


async def test_only_the_riders_and_the_rides_driver_see_or_touch_a_ride(world: World) -> None:
    await world.driver_at("a", 100)
    await world.driver_at("b", 5_000)
    ride = await ask(world)
    assert await ride_steps.get_ride(world.deps, rider("u1"), ride.id) == ride
    assert await ride_steps.get_ride(world.deps, driver("a"), ride.id) == ride
    for outsider in (rider("u2"), driver("b")):
        with pytest.raises(Forbidden):
            await ride_steps.get_ride(world.deps, outsider, ride.id)
    with pytest.raises(NotParticipant):
        await ride_steps.accept(world.deps, driver("b"), ride.id)
    with pytest.raises(NotParticipant):
        await ride_steps.cancel(world.deps, rider("u2"), ride.id)
    with pytest.raises(Forbidden):
        await ride_steps.accept(world.deps, rider("u1"), ride.id)
    with pytest.raises(Forbidden):
        await request_ride(world.deps, driver("a"), "r_x", HERE, None)
    with pytest.raises(NotFound):
        await ride_steps.get_ride(world.deps, rider("u1"), "r_nope")
    assert await world.deps.rides.get(ride.id) == ride


async def test_a_repeated_request_id_returns_the_stored_ride(world: World) -> None:
    await world.driver_at("a", 100)
    await world.driver_at("b", 200)
    first = await ask(world, key="k1")
    again = await ask(world, key="k1")
    assert again == first
    assert (await world.deps.drivers.get("b")).status is DriverStatus.AVAILABLE


async def test_the_pending_offer_is_found_for_a_reconnecting_driver(world: World) -> None:
    await world.driver_at("a", 100)
    assert await drivers.pending_offer(world.deps, "a") is None
    ride = await ask(world)
    assert await drivers.pending_offer(world.deps, "a") == ride
    world.clock.advance(world.deps.policy.offer_timeout_ms)
    assert await drivers.pending_offer(world.deps, "a") is None
