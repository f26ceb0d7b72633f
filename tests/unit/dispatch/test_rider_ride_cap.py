"""One rider cannot hold many drivers: a cap on a rider's active rides, counted when a
ride is requested, uncounted when it ends, and healed when an uncount was lost."""

from __future__ import annotations

import pytest

from dispatch.domain.drivers import DriverStatus
from dispatch.domain.geo import LatLng
from dispatch.domain.rides import Ride, RideStatus
from dispatch.service_layer import ride_steps
from dispatch.service_layer.errors import ActiveRideLimit, BackendUnavailable
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from dispatch.service_layer.rider_rides import ORPHAN_AFTER_MS

from .conftest import PICKUP, World, driver, rider

HERE = LatLng(*PICKUP)


async def ask(world: World, who: str = "u1", key: str | None = None) -> Ride:
    return await request_ride(world.deps, rider(who), new_ride_id(who, key), HERE, None)


async def drivers_around(world: World, n: int) -> None:
    for i in range(n):
        await world.driver_at(f"d{i}", 50 + 10 * i)


async def reserved(world: World, n: int) -> list[str]:
    recs = [await world.deps.drivers.get(f"d{i}") for i in range(n)]
    return [r.ride_id or "" for r in recs if r.status is not DriverStatus.AVAILABLE]


async def test_a_rider_at_the_cap_is_refused_and_holds_no_more_drivers(world: World) -> None:
    cap = world.deps.policy.max_active_rides
    await drivers_around(world, cap + 3)
    first = [await ask(world) for _ in range(cap)]
    assert all(r.status is RideStatus.OFFERED for r in first)
    for _ in range(3):
        with pytest.raises(ActiveRideLimit, match=f"{cap} active ride"):
            await ask(world)
    assert sorted(await reserved(world, cap + 3)) == sorted(r.id for r in first)
    # Everyone else is still served.
    assert (await ask(world, "u2")).status is RideStatus.OFFERED


async def test_a_retry_of_a_counted_ride_is_answered_not_refused(world: World) -> None:
    await drivers_around(world, 3)
    rides = [await ask(world, key=f"k{i}") for i in range(world.deps.policy.max_active_rides)]
    assert await ask(world, key="k0") == rides[0]


async def test_an_ended_ride_frees_its_place(world: World) -> None:
    cap = world.deps.policy.max_active_rides
    await drivers_around(world, cap + 1)
    rides = [await ask(world) for _ in range(cap)]
    await ride_steps.cancel(world.deps, rider("u1"), rides[0].id)
    assert (await ask(world)).status is RideStatus.OFFERED
    # A ride that declines through to no_driver ends too.
    last = rides[-1]
    assert last.driver_id is not None
    declined = await ride_steps.decline(world.deps, driver(last.driver_id), last.id)
    while declined.status is RideStatus.OFFERED:
        assert declined.driver_id is not None
        declined = await ride_steps.decline(world.deps, driver(declined.driver_id), declined.id)
    assert declined.status is RideStatus.NO_DRIVER
    assert (await ask(world)).status is RideStatus.OFFERED


async def test_no_driver_answers_do_not_count(world: World) -> None:
    for _ in range(world.deps.policy.max_active_rides + 2):
        assert (await ask(world)).status is RideStatus.NO_DRIVER


async def test_a_count_whose_ride_ended_without_uncounting_is_healed(world: World) -> None:
    """The uncount lives in another slot than the ride: a crash between the two writes
    leaves a count for a ride that is over."""
    cap = world.deps.policy.max_active_rides
    await drivers_around(world, cap + 1)
    rides = [await ask(world) for _ in range(cap)]
    ended = await ride_steps.cancel(world.deps, rider("u1"), rides[0].id)
    await world.deps.active_rides.hold("u1", ended.id, world.clock.now, cap + 1)  # the lost uncount
    assert (await ask(world)).status is RideStatus.OFFERED


async def test_a_count_with_no_ride_is_healed_only_after_requests_could_still_run(
    world: World,
) -> None:
    cap = world.deps.policy.max_active_rides
    await drivers_around(world, 1)
    for i in range(cap):  # requests that died before storing their rides
        assert not await world.deps.active_rides.hold("u1", f"r_dead{i}", world.clock.now, cap)
    world.clock.advance(ORPHAN_AFTER_MS - 1)
    with pytest.raises(ActiveRideLimit):
        await ask(world)
    world.clock.advance(1)
    await drivers_around(world, 1)  # a fresh fix: the driver went quiet meanwhile
    assert (await ask(world)).status is RideStatus.OFFERED


async def test_a_request_failing_before_its_ride_is_stored_does_not_count(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await drivers_around(world, world.deps.policy.max_active_rides + 1)

    async def down(*args: object) -> object:
        raise BackendUnavailable("index down")

    with monkeypatch.context() as m:
        m.setattr(world.deps.index, "nearest", down)
        for _ in range(world.deps.policy.max_active_rides + 1):
            with pytest.raises(BackendUnavailable):
                await ask(world)
    assert (await ask(world)).status is RideStatus.OFFERED
