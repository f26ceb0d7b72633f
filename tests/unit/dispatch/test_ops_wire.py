"""The ops stream's wire format: a page that applies the snapshot and every delta holds
exactly the world the server looked at, in few bytes."""

from __future__ import annotations

import random
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from dispatch.domain.geo import LatLng
from dispatch.domain.rides import Ride, RideStatus
from dispatch.entrypoints.ops_wire import E5, View
from dispatch.service_layer.ops_view import (
    RIDE_SILENCE_MS,
    STATS_WINDOW_MS,
    Area,
    Drivers,
    MapDriver,
    MapStatus,
    ProductBits,
    RideFigures,
    RidesInFlight,
    RideStats,
    World,
    look,
)
from geoindex import MemoryGeoIndex, Position

AREA = Area(52.52, 13.405, 10_000)
STATUSES = list(MapStatus)


class Page:
    """What web/ops/src/state.js does with the frames, in Python."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        d = snapshot["drivers"]
        self.statuses = snapshot["statuses"]
        self.ids: list[str | None] = list(d["id"])
        self.lat, self.lng, self.status = list(d["lat"]), list(d["lng"]), list(d["status"])
        self.products = list(d["products"])
        self.rides: dict[str, tuple[Any, ...]] = {}
        self._rides(snapshot["rides"])

    def apply(self, delta: dict[str, Any]) -> None:
        if "moved" in delta:
            m = delta["moved"]
            for slot, dlat, dlng in zip(ungap(m["slot"]), m["dlat"], m["dlng"], strict=True):
                self.lat[slot] += dlat
                self.lng[slot] += dlng
        if "status" in delta:
            s = delta["status"]
            for slot, code in zip(ungap(s["slot"]), s["status"], strict=True):
                self.status[slot] = code
        if "products" in delta:
            p = delta["products"]
            for slot, mask in zip(ungap(p["slot"]), p["products"], strict=True):
                self.products[slot] = mask
        for slot in ungap(delta.get("gone", [])):
            self.ids[slot] = None
        if "added" in delta:
            a = delta["added"]
            self.ids += a["id"]
            self.lat += a["lat"]
            self.lng += a["lng"]
            self.status += a["status"]
            self.products += a["products"]
        if "rides" in delta:
            self._rides(delta["rides"])
        for ride_id in delta.get("rides_gone", []):
            del self.rides[ride_id]

    def _rides(self, cols: dict[str, list[Any]]) -> None:
        for i, ride_id in enumerate(cols["id"]):
            self.rides[ride_id] = (cols["status"][i], cols["driver"][i], cols["product"][i])

    def drivers(self) -> dict[str, tuple[int, int, str, int]]:
        return {
            i: (self.lat[s], self.lng[s], self.statuses[self.status[s]], self.products[s])
            for s, i in enumerate(self.ids)
            if i is not None
        }


def ungap(gaps: list[int]) -> list[int]:
    out, at = [], 0
    for i, gap in enumerate(gaps):
        at = gap if i == 0 else at + gap
        out.append(at)
    return out


def world_of(drivers: list[MapDriver], rides: list[Ride]) -> World:
    return World(Drivers.of(drivers), rides)


def expected(drivers: list[MapDriver]) -> dict[str, tuple[int, int, str, int]]:
    return {
        d.id: (round(d.lat * E5), round(d.lng * E5), d.status.value, d.products) for d in drivers
    }


def ride(
    ride_id: str, status: RideStatus, driver: str | None, version: int = 1, product: str = "xl"
) -> Ride:
    return Ride(
        ride_id, "r1", LatLng(52.5, 13.4), LatLng(52.51, 13.41), status, 0, 0, driver,
        version=version, product=product,
    )  # fmt: skip


def city(rng: random.Random, n: int) -> list[MapDriver]:
    return [
        MapDriver(f"d{i}", 52.52 + rng.uniform(-0.05, 0.05), 13.405 + rng.uniform(-0.08, 0.08),
                  rng.choice(STATUSES), rng.randrange(1, 16))
        for i in range(n)
    ]  # fmt: skip


def test_a_page_applying_every_delta_holds_the_world_the_server_saw() -> None:
    rng = random.Random(3)
    view = View(AREA)
    drivers = city(rng, 200)
    world = world_of(drivers, [ride("x1", RideStatus.OFFERED, "d1")])
    assert view.advance(world, 1) is not None
    page = Page(view.snapshot(1))
    assert page.drivers() == expected(drivers)
    for t in range(2, 30):
        # Some move, some change status or vehicle (and so products), some leave, some
        # arrive; rides come and go.
        drivers = [
            replace(d, lat=d.lat + rng.uniform(-1e-4, 1e-4))
            if (roll := rng.random()) < 0.6
            else replace(d, status=rng.choice(STATUSES))
            if roll < 0.8
            else replace(d, products=rng.randrange(1, 16))
            for d in drivers
            if rng.random() > 0.05
        ] + [MapDriver(f"n{t}.{k}", 52.5, 13.4, MapStatus.AVAILABLE, 2) for k in range(t % 4)]
        rides = [ride(f"x{t}", RideStatus.ACCEPTED, drivers[0].id)] if t % 3 else []
        world = world_of(drivers, rides)
        delta = view.advance(world, t)
        if delta is not None:
            page.apply(orjson.loads(orjson.dumps(delta)))
        assert page.drivers() == expected(drivers)
        assert page.rides == {r.id: (r.status.value, r.driver_id, r.product) for r in rides}
    # A page joining late starts from the snapshot of the same view.
    assert Page(view.snapshot(99)).drivers() == expected(drivers)


def test_nothing_changed_sends_nothing_and_holes_close_on_renumbering() -> None:
    view = View(AREA)
    drivers = city(random.Random(1), 10)
    view.advance(world_of(drivers, []), 1)
    assert view.advance(world_of(drivers, []), 2) is None
    view.advance(world_of(drivers[5:], []), 3)
    assert view.holes == 5
    view.renumber()
    snap = view.snapshot(4)
    assert view.holes == 0 and None not in snap["drivers"]["id"]
    assert Page(snap).drivers() == expected(drivers[5:])


def test_ten_thousand_drivers_moving_cost_about_nine_bytes_each() -> None:
    rng = random.Random(5)
    view = View(AREA)
    drivers = city(rng, 10_000)
    view.advance(world_of(drivers, []), 1)
    # About 10 m each, as in a second of city driving.
    moved = [
        MapDriver(d.id, d.lat + rng.uniform(-9e-5, 9e-5), d.lng + rng.uniform(-1.3e-4, 1.3e-4),
                  d.status)
        for d in drivers
    ]  # fmt: skip
    size = len(orjson.dumps(view.advance(world_of(moved, []), 2)))
    assert size / 10_000 < 12
    assert size < 200_000 / 1.5


def test_a_new_vehicle_sends_only_its_drivers_products_and_a_snapshot_names_the_bits() -> None:
    view = View(AREA, ("economy", "comfort", "xl", "wav"))
    drivers = city(random.Random(2), 100)
    view.advance(world_of(drivers, []), 1)
    snap = view.snapshot(1)
    assert snap["products"] == ["economy", "comfort", "xl", "wav"]
    assert snap["drivers"]["products"] == [d.products for d in drivers]
    drivers[7] = replace(drivers[7], products=8)  # now in a wheelchair-accessible car
    delta = view.advance(world_of(drivers, []), 2)
    assert delta == {"products": {"slot": [7], "products": [8]}, "t": 2}


def test_a_drivers_products_are_one_bit_per_catalog_product() -> None:
    bits = ProductBits(["economy", "comfort", "xl", "wav"])
    assert bits.names == ("economy", "comfort", "xl", "wav")
    assert bits.masks([("comfort", "economy"), (), ("wav",), ("economy", "xl")]).tolist() == [
        3,
        0,
        8,
        5,
    ]
    # A product the catalog does not know has no bit (the page cannot select it).
    assert bits.mask(("retired", "xl")) == 4


def test_rides_in_flight_keep_the_newest_version_and_forget_ended_rides() -> None:
    rides = RidesInFlight()
    rides.apply(ride("x", RideStatus.OFFERED, "d1", version=1))
    rides.apply(ride("y", RideStatus.IN_PROGRESS, "d2", version=4))
    assert rides.driver_statuses() == {"d1": MapStatus.RESERVED, "d2": MapStatus.ON_RIDE}
    rides.apply(ride("x", RideStatus.ACCEPTED, "d1", version=2))
    rides.apply(ride("x", RideStatus.OFFERED, "d1", version=1))  # late: ignored
    assert rides.driver_statuses()["d1"] is MapStatus.ON_RIDE
    rides.apply(ride("x", RideStatus.COMPLETED, "d1", version=5))
    rides.apply(ride("x", RideStatus.ARRIVED, "d1", version=3))  # late: stays ended
    assert [r.id for r in rides.rides()] == ["y"]
    # A ride silent for hours (its final notice lost) leaves the map.
    rides.forget_silent(RIDE_SILENCE_MS + 1)
    assert rides.rides() == []


def test_the_panel_figures_cover_the_last_five_minutes_of_requests() -> None:
    stats = RideStats()
    for i in range(10):  # ten requests, one a minute: request i at t = i minutes
        r = Ride(f"x{i}", "r1", LatLng(52.5, 13.4), None, RideStatus.OFFERED, i * 60_000, 0)
        stats.apply(r)
        if i % 2 == 0:  # every other one accepted, with an ETA of i + 1 minutes
            stats.apply(replace(r, status=RideStatus.ACCEPTED, eta_s=60 * (i + 1), version=2))
        elif i % 4 == 1:
            stats.apply(replace(r, status=RideStatus.NO_DRIVER, version=2))
    # At t = 10 min the window holds requests 5..9: 6 and 8 accepted, 5 and 9 not
    # (no driver), 7 still waiting (not counted in the match rate).
    now = 10 * 60_000 - 1
    assert stats.figures(now) == RideFigures(1.0, 0.5, 540)
    assert stats.figures(now + STATS_WINDOW_MS + 60_000) == RideFigures(0.0, None, None)


def test_the_panel_figures_of_one_product_count_only_its_rides() -> None:
    stats = RideStats()
    asks = [
        ("x1", "xl", RideStatus.ACCEPTED, 300),
        ("x2", "xl", RideStatus.NO_DRIVER, None),
        ("e1", "economy", RideStatus.ACCEPTED, 60),
        ("o1", None, RideStatus.ACCEPTED, 120),  # asked before there were products
    ]
    for ride_id, product, status, eta in asks:
        r = Ride(ride_id, "r1", LatLng(52.5, 13.4), None, RideStatus.OFFERED, 0, 0, product=product)
        stats.apply(r)
        stats.apply(replace(r, status=status, eta_s=eta, version=2))
    # Four requests in five minutes: 0.8 a minute; xl's two: one matched, ETA 5:00.
    assert stats.figures(1_000) == RideFigures(0.8, 0.75, 300)
    assert stats.figures(1_000, "xl") == RideFigures(0.4, 0.5, 300)
    assert stats.figures(1_000, "economy") == RideFigures(0.2, 1.0, 60)
    assert stats.figures(1_000, "wav") == RideFigures(0.0, None, None)


def test_the_figures_of_each_product_travel_when_they_change() -> None:
    view = View(AREA, ("economy", "xl"))
    xl = RideFigures(0.4, 0.5, 300)
    none = RideFigures(0.0, None, None)
    world = World(Drivers.of([]), [], xl, {"economy": none, "xl": xl})
    view.advance(world, 1)
    assert view.snapshot(1)["figures_by_product"]["xl"] == {
        "requests_per_min": 0.4,
        "match_rate": 0.5,
        "p95_eta_s": 300,
    }
    assert view.advance(world, 2) is None
    later = replace(world, figures_by_product={"economy": xl, "xl": xl})
    delta = view.advance(later, 3)
    assert delta is not None and delta["figures_by_product"]["economy"]["p95_eta_s"] == 300


async def test_a_look_gives_each_driver_its_position_and_the_status_the_map_colours() -> None:
    now = 1_800_000_000_000
    index = MemoryGeoIndex(clock=lambda: now)
    places = {"free": 52.520, "offered": 52.521, "riding": 52.522, "off": 52.523}
    await index.upsert([Position(d, lat, 13.405, now - 10) for d, lat in places.items()])
    for busy in ("offered", "riding", "off"):
        await index.set_available(busy, False)
    await index.set_products("free", ["economy", "xl"])
    await index.set_products("riding", ["wav"])
    rides = RidesInFlight()
    rides.apply(ride("x1", RideStatus.OFFERED, "offered"))
    rides.apply(ride("x2", RideStatus.IN_PROGRESS, "riding"))
    deps: Any = SimpleNamespace(index=index)
    bits = ProductBits(["economy", "comfort", "xl", "wav"])
    world = await look(deps, AREA, 100, rides, bits)
    d = world.drivers
    # What each serves, bit i for the i-th product: economy 1, xl 4, wav 8 (none: 0).
    assert dict(zip(d.ids, d.products.tolist(), strict=True)) == {
        "free": 1 | 4,
        "offered": 0,
        "riding": 8,
        "off": 0,
    }
    got = {
        i: (lat, lng, STATUSES[code])
        for i, lat, lng, code in zip(d.ids, d.lat.tolist(), d.lng.tolist(), d.status, strict=True)
    }
    assert got == {
        "free": (
            pytest.approx(52.520, abs=1e-5),
            pytest.approx(13.405, abs=1e-5),
            MapStatus.AVAILABLE,
        ),
        "offered": (
            pytest.approx(52.521, abs=1e-5),
            pytest.approx(13.405, abs=1e-5),
            MapStatus.RESERVED,
        ),
        "riding": (
            pytest.approx(52.522, abs=1e-5),
            pytest.approx(13.405, abs=1e-5),
            MapStatus.ON_RIDE,
        ),
        "off": (
            pytest.approx(52.523, abs=1e-5),
            pytest.approx(13.405, abs=1e-5),
            MapStatus.OFFLINE,
        ),
    }
    assert {r.id for r in world.rides} == {"x1", "x2"}
