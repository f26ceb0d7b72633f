"""Geofence crossings and airport queues on the embedded backend, moved by real fixes:
enter at once, exit only after the dwell; first in, first offered; a decline to the back;
a rider's cancel after accepting gives the head back; offline or a ride elsewhere: out."""

from __future__ import annotations

import orjson
import pytest

from dispatch.domain.areas import Area, AreaKind
from dispatch.domain.drivers import DriverStatus
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import RideStatus
from dispatch.service_layer import drivers, ride_steps
from dispatch.service_layer.airport import queue_of
from dispatch.service_layer.areas import delete_area, put_area
from dispatch.service_layer.drivers import Fix
from dispatch.service_layer.index_sweep import sweep_index_once
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from geoindex import Position

from .conftest import World, driver, rider

OPS = Principal(Role.OPS, "o1")
FLEET = Principal(Role.FLEET, "gw")
AIRPORT = (52.36, 13.50)  # the airport's centre; the box is 0.01 degrees each way
TOWN = (52.52, 13.405)
DWELL_S = 60


def box(lat: float, lng: float, half: float) -> tuple:
    ring = (
        (lng - half, lat - half),
        (lng + half, lat - half),
        (lng + half, lat + half),
        (lng - half, lat + half),
        (lng - half, lat - half),
    )
    return ((ring,),)


@pytest.fixture
async def airport(world: World) -> World:
    area = Area("ber", AreaKind.AIRPORT, "BER", box(*AIRPORT, 0.01), DWELL_S)
    await put_area(world.deps.areas, OPS, area, world.clock.now)
    return world


class Moves:
    def __init__(self, world: World) -> None:
        self.world = world
        self.seq: dict[str, int] = {}

    async def to(self, who: str, lat: float, lng: float) -> None:
        self.seq[who] = self.seq.get(who, 0) + 1
        self.world.clock.advance(1)  # every fix newer than the last
        fix = Fix(lat, lng, self.world.clock.now, self.seq[who])
        await drivers.update_location(self.world.deps, driver(who), who, fix)

    async def into_airport(self, who: str, north_m: float = 0.0) -> None:
        await self.to(who, AIRPORT[0] + north_m / 111_195, AIRPORT[1])


async def log_events(world: World) -> list[dict]:  # type: ignore[type-arg]
    return [orjson.loads(e) for e in await world.deps.fences.log.recent(1000)]


async def crossings(world: World) -> list[tuple[str, str, str]]:
    return [
        (e["event"], e["area_id"], e["driver_id"])
        for e in await log_events(world)
        if e["type"] == "area"
    ]


async def queue(world: World) -> list[str]:
    order, _ = await queue_of(world.deps, OPS, "ber")
    return order


async def ask(world: World, at: tuple[float, float] = AIRPORT, who: str = "u1"):  # type: ignore[no-untyped-def]
    return await request_ride(world.deps, rider(who), new_ride_id(who, None), LatLng(*at), None)


async def test_enter_at_once_exit_only_after_the_dwell(airport: World) -> None:
    move = Moves(airport)
    await move.to("d1", *TOWN)
    await move.into_airport("d1")
    await move.into_airport("d1", 10)
    assert await crossings(airport) == [("enter", "ber", "d1")]
    airport.clock.advance(1_000)
    await move.to("d1", *TOWN)  # out...
    airport.clock.advance(30_000)
    await move.into_airport("d1")  # ...and back within the dwell: nothing happened
    airport.clock.advance(1_000)
    await move.to("d1", *TOWN)
    airport.clock.advance(DWELL_S * 1000 - 5)  # each fix moves the clock 1 ms more
    await move.to("d1", *TOWN)
    assert await crossings(airport) == [("enter", "ber", "d1")]
    airport.clock.advance(5)
    await move.to("d1", *TOWN)
    await move.to("d1", *TOWN)
    assert await crossings(airport) == [("enter", "ber", "d1"), ("exit", "ber", "d1")]


async def test_a_driver_gone_silent_exits_and_leaves_the_queue_when_swept(
    airport: World,
) -> None:
    move = Moves(airport)
    for who in ("d1", "d2"):
        await move.into_airport(who)
    assert await queue(airport) == ["d1", "d2"]
    airport.clock.advance(airport.deps.index.ttl_ms - 1_000)
    await move.into_airport("d2")  # d2 still sends fixes, d1 has gone quiet
    airport.clock.advance(2_000)
    assert await sweep_index_once(airport.deps) == ["d1"]
    assert await crossings(airport) == [
        ("enter", "ber", "d1"),
        ("enter", "ber", "d2"),
        ("exit", "ber", "d1"),
    ]
    assert await queue(airport) == ["d2"]
    assert await airport.deps.fences.presence.areas_of("d1") == frozenset()
    assert await sweep_index_once(airport.deps) == []  # nothing more to tell
    assert len(await crossings(airport)) == 3
    # back on the air: it enters again, at the back of the queue
    await move.into_airport("d1")
    assert (await crossings(airport))[-1] == ("enter", "ber", "d1")
    assert await queue(airport) == ["d2", "d1"]


async def test_the_queue_is_first_in_first_out_not_nearest(airport: World) -> None:
    move = Moves(airport)
    for who, north in (("d1", 800), ("d2", 400), ("d3", 10)):
        await move.into_airport(who, north)
        airport.clock.advance(10)
    assert await queue(airport) == ["d1", "d2", "d3"]
    ride = await ask(airport)
    assert (ride.status, ride.driver_id) == (RideStatus.OFFERED, "d1")
    rec = await airport.deps.drivers.get("d1")
    assert (rec.status, rec.fence) == (DriverStatus.RESERVED, ride.fence)
    order, held = await queue_of(airport.deps, OPS, "ber")
    assert order == ["d1", "d2", "d3"] and held == {"d1": ride.id}
    # the next airport ride goes to the next in line, never the one out on an offer
    other = await ask(airport, who="u2")
    assert other.driver_id == "d2"


async def test_a_decline_sends_the_driver_to_the_back(airport: World) -> None:
    move = Moves(airport)
    for who in ("d1", "d2", "d3"):
        await move.into_airport(who)
        airport.clock.advance(10)
    ride = await ask(airport)
    ride = await ride_steps.decline(airport.deps, driver("d1"), ride.id)
    assert ride.driver_id == "d2"
    assert await queue(airport) == ["d2", "d3", "d1"]


async def test_accepting_leaves_the_queue_and_a_riders_cancel_gives_the_head_back(
    airport: World,
) -> None:
    move = Moves(airport)
    for who in ("d1", "d2", "d3"):
        await move.into_airport(who)
        airport.clock.advance(10)
    ride = await ask(airport)
    await ride_steps.accept(airport.deps, driver("d1"), ride.id)
    assert await queue(airport) == ["d2", "d3"]
    airport.clock.advance(5_000)
    await ride_steps.cancel(airport.deps, rider("u1"), ride.id)
    assert await queue(airport) == ["d1", "d2", "d3"]
    assert (await airport.deps.drivers.get("d1")).status is DriverStatus.AVAILABLE


async def test_jitter_keeps_the_place_leaving_longer_loses_it(airport: World) -> None:
    move = Moves(airport)
    for who in ("d1", "d2"):
        await move.into_airport(who)
        airport.clock.advance(10)
    await move.to("d1", *TOWN)  # GPS jitter out of the area
    airport.clock.advance(20_000)
    await move.into_airport("d1")
    assert await queue(airport) == ["d1", "d2"]
    await move.to("d1", *TOWN)
    airport.clock.advance(DWELL_S * 1000)
    await move.to("d1", *TOWN)
    assert await queue(airport) == ["d2"]
    await move.into_airport("d1")  # back later: the back of the line
    assert await queue(airport) == ["d2", "d1"]


async def test_offline_leaves_the_queue_available_again_rejoins_at_the_back(
    airport: World,
) -> None:
    move = Moves(airport)
    for who in ("d1", "d2"):
        await move.into_airport(who)
        airport.clock.advance(10)
    await drivers.set_status(airport.deps, driver("d1"), "d1", DriverStatus.OFFLINE)
    assert await queue(airport) == ["d2"]
    await move.into_airport("d1")  # an offline driver inside does not queue
    assert await queue(airport) == ["d2"]
    await drivers.set_status(airport.deps, driver("d1"), "d1", DriverStatus.AVAILABLE)
    assert await queue(airport) == ["d2", "d1"]


async def test_a_ride_elsewhere_takes_the_driver_out_of_the_queue(airport: World) -> None:
    move = Moves(airport)
    await move.into_airport("d1")
    await move.into_airport("d2", 500)
    # a pickup just outside the airport: matched by distance, not from the queue
    outside = (AIRPORT[0] + 0.0105, AIRPORT[1])
    ride = await ask(airport, outside)
    assert ride.driver_id == "d2"
    await ride_steps.accept(airport.deps, driver("d2"), ride.id)
    assert await queue(airport) == ["d1"]


async def test_queue_changes_are_events_in_the_log(airport: World) -> None:
    move = Moves(airport)
    await move.into_airport("d1")
    await move.into_airport("d2")
    changes = [e["drivers"] for e in await log_events(airport) if e["type"] == "queue"]
    assert changes == [["d1"], ["d1", "d2"]]


class FleetMoves(Moves):
    """The same moves as fleet batches (POST /v1/locations): the geofence sees each batch
    at once."""

    async def batch(self, moves: list[tuple[str, float, float]]) -> None:
        positions = []
        for who, lat, lng in moves:
            self.seq[who] = self.seq.get(who, 0) + 1
            self.world.clock.advance(1)
            positions.append(Position(who, lat, lng, self.world.clock.now, self.seq[who]))
        await drivers.update_locations(self.world.deps, FLEET, positions)

    async def to(self, who: str, lat: float, lng: float) -> None:
        await self.batch([(who, lat, lng)])


async def test_fleet_batches_cross_and_queue_as_single_fixes_do(airport: World) -> None:
    move = FleetMoves(airport)
    north = AIRPORT[0] + 400 / 111_195
    # d1's last fix of the batch counts (it ends inside); d3 stays in town
    await move.batch([("d1", *TOWN), ("d3", *TOWN), ("d1", *AIRPORT)])
    airport.clock.advance(10)
    await move.batch([("d2", north, AIRPORT[1]), ("d1", north, AIRPORT[1]), ("d3", *TOWN)])
    assert await crossings(airport) == [("enter", "ber", "d1"), ("enter", "ber", "d2")]
    assert await queue(airport) == ["d1", "d2"]
    await move.batch([("d1", *TOWN), ("d2", *AIRPORT)])  # d1: jitter out...
    airport.clock.advance(20_000)
    await move.batch([("d1", *AIRPORT), ("d3", *AIRPORT)])  # ...and back within the dwell
    assert await queue(airport) == ["d1", "d2", "d3"]
    await move.to("d1", *TOWN)
    airport.clock.advance(DWELL_S * 1000)
    await move.batch([("d1", *TOWN), ("d2", *AIRPORT)])
    assert await crossings(airport) == [
        ("enter", "ber", "d1"),
        ("enter", "ber", "d2"),
        ("enter", "ber", "d3"),
        ("exit", "ber", "d1"),
    ]
    assert await queue(airport) == ["d2", "d3"]


async def test_a_fleet_batch_with_no_areas_left_exits_the_drivers_in_them(
    airport: World,
) -> None:
    move = FleetMoves(airport)
    await move.batch([("d1", *AIRPORT), ("d2", *TOWN)])
    await delete_area(airport.deps.areas, OPS, "ber")
    await move.batch([("d1", *AIRPORT), ("d2", *TOWN)])  # out, within the dwell
    assert await crossings(airport) == [("enter", "ber", "d1")]
    airport.clock.advance(DWELL_S * 1000)
    await move.batch([("d1", *AIRPORT), ("d2", *TOWN)])
    assert await crossings(airport) == [("enter", "ber", "d1"), ("exit", "ber", "d1")]
