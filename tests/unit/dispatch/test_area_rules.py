"""Areas on rides: outside every service area or inside a no_pickup area a ride is refused
with nothing counted or reserved; a pickup is offered only to drivers in its service
area; with no areas at all, everything is allowed."""

from __future__ import annotations

import pytest

from dispatch.domain.areas import Area, AreaKind, OutsideServiceArea, PickupNotAllowed
from dispatch.domain.drivers import DriverStatus
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import RideStatus
from dispatch.service_layer.area_rules import allowed_pickup
from dispatch.service_layer.areas import put_area
from dispatch.service_layer.ride_requests import new_ride_id, request_ride

from .conftest import PICKUP, World, rider

HERE = LatLng(*PICKUP)
OPS = Principal(Role.OPS, "o1")


def box(lat: float, lng: float, half_deg: float) -> tuple:
    ring = (
        (lng - half_deg, lat - half_deg),
        (lng + half_deg, lat - half_deg),
        (lng + half_deg, lat + half_deg),
        (lng - half_deg, lat + half_deg),
        (lng - half_deg, lat - half_deg),
    )
    return ((ring,),)


async def draw(world: World, ident: str, kind: AreaKind, lat: float, lng: float, half: float):  # type: ignore[no-untyped-def]
    area = Area(ident, kind, ident, box(lat, lng, half))
    return await put_area(world.deps.areas, OPS, area, world.clock.now)


async def ask(world: World, pickup: LatLng = HERE, dropoff: LatLng | None = None, who: str = "u1"):  # type: ignore[no-untyped-def]
    return await request_ride(world.deps, rider(who), new_ride_id(who, None), pickup, dropoff)


async def nothing_happened(world: World, driver_id: str) -> None:
    assert (await world.deps.drivers.get(driver_id)).status is DriverStatus.AVAILABLE
    assert world.seen.rides == []
    assert await world.deps.active_rides.hold("u1", "probe", world.clock.now, 1) == []


async def test_with_no_areas_every_ride_is_allowed(world: World) -> None:
    await world.driver_at("d1", 100)
    assert (await ask(world, HERE, LatLng(0.0, 0.0))).status is RideStatus.OFFERED


async def test_a_pickup_outside_every_service_area_is_refused(world: World) -> None:
    await draw(world, "city", AreaKind.SERVICE_AREA, 48.85, 2.35, 0.1)  # Paris, not here
    await world.driver_at("d1", 100)
    with pytest.raises(OutsideServiceArea) as refused:
        await ask(world)
    assert refused.value.which == "pickup" and refused.value.code == "outside_service_area"
    await nothing_happened(world, "d1")


async def test_a_dropoff_outside_every_service_area_is_refused(world: World) -> None:
    await draw(world, "city", AreaKind.SERVICE_AREA, *PICKUP, 0.1)
    await world.driver_at("d1", 100)
    with pytest.raises(OutsideServiceArea) as refused:
        await ask(world, HERE, LatLng(PICKUP[0] + 0.5, PICKUP[1]))
    assert refused.value.which == "dropoff"
    await nothing_happened(world, "d1")
    inside = LatLng(PICKUP[0] + 0.05, PICKUP[1])
    assert (await ask(world, HERE, inside, who="u2")).status is RideStatus.OFFERED


async def test_a_pickup_in_a_no_pickup_area_names_an_allowed_point_just_outside(
    world: World,
) -> None:
    await draw(world, "city", AreaKind.SERVICE_AREA, *PICKUP, 0.1)
    await draw(world, "station", AreaKind.NO_PICKUP, *PICKUP, 0.002)
    await world.driver_at("d1", 100)
    with pytest.raises(PickupNotAllowed) as refused:
        await ask(world)
    assert refused.value.area_id == "station"
    nearest = refused.value.nearest
    assert nearest is not None and allowed_pickup(world.deps.areas, nearest)
    # about 0.002 degrees from the centre (one side of the box) plus a few metres
    assert abs(nearest.lat - PICKUP[0]) + abs(nearest.lng - PICKUP[1]) == pytest.approx(
        0.002, abs=0.0003
    )
    await nothing_happened(world, "d1")
    assert (await ask(world, nearest)).status is RideStatus.OFFERED


async def test_a_driver_outside_the_pickups_service_area_is_never_offered_it(
    world: World,
) -> None:
    # Two service areas side by side at the pickup's latitude; the pickup in the south
    # one, the nearest driver just across in the north one.
    await draw(world, "south", AreaKind.SERVICE_AREA, PICKUP[0] - 0.0995, PICKUP[1], 0.1)
    await draw(world, "north", AreaKind.SERVICE_AREA, PICKUP[0] + 0.1015, PICKUP[1], 0.1)
    await world.driver_at("across", 400)  # north of the border, 0.0005 deg up
    await world.driver_at("inside", -700)
    ride = await ask(world)
    assert ride.driver_id == "inside"
    assert (await world.deps.drivers.get("across")).status is DriverStatus.AVAILABLE


async def test_areas_reach_the_rules_after_a_refresh(world: World) -> None:
    other = type(world.deps.areas)(world.deps.areas.store)  # a second instance's book
    await draw(world, "city", AreaKind.SERVICE_AREA, 48.85, 2.35, 0.1)
    assert other.zone(*PICKUP).open  # not refreshed yet
    assert await other.refresh() and not other.zone(*PICKUP).open
    assert not await other.refresh()  # nothing changed: no reload


async def test_a_batched_window_also_keeps_to_the_pickups_service_area() -> None:
    from dispatch.bootstrap import bootstrap
    from dispatch.service_layer.batching import window_round
    from dispatch.settings import Settings
    from tests.fake_clock import FakeClock

    from .conftest import Recorder

    clock = FakeClock()
    settings = Settings(match_window_ms=2_000, match_max_wait_s=30)
    async with bootstrap(settings, clock=clock, observer=Recorder()) as runtime:
        world = World(runtime.deps, clock, Recorder())
        await draw(world, "south", AreaKind.SERVICE_AREA, PICKUP[0] - 0.0995, PICKUP[1], 0.1)
        await draw(world, "north", AreaKind.SERVICE_AREA, PICKUP[0] + 0.1015, PICKUP[1], 0.1)
        await world.driver_at("across", 400)
        await world.driver_at("inside", -700)
        ride = await ask(world)
        clock.advance(2_000)
        await window_round(world.deps, "i1", {})
        got = await world.deps.rides.get(ride.id)
        assert got is not None and got.driver_id == "inside"
