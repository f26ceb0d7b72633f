"""Products in the index, on every backend: a search for a product sees exactly the drivers
serving it, and no change of vehicle, availability or position leaves a stale entry."""

from __future__ import annotations

import math
from typing import Any

import pytest

from geoindex import GeoIndex, InvalidQuery, Position
from geoindex.cells import haversine_m
from tests.integration.geoindex.conftest import Clock, MakeIndex

pytestmark = pytest.mark.redis

LAT, LNG = 52.52, 13.405


def at(driver_id: str, lat: float, lng: float, ts: int) -> Position:
    return Position(driver_id, lat, lng, ts)


def ids(hits: list[Any]) -> list[str]:
    return [h.driver_id for h in hits]


async def product_members(raw_redis: Any, prefix: str = "gi") -> dict[str, set[str]]:
    """Every product set's members (driver ids), across regions, read from Redis itself."""
    out: dict[str, set[str]] = {}
    for key in await raw_redis.keys(f"{prefix}:{{r*}}:geo:*"):
        product = key.decode().rsplit(":", 1)[1]
        members = await raw_redis.zrange(key, 0, -1)
        out.setdefault(product, set()).update(m[24:].decode() for m in members)
    return {p: m for p, m in out.items() if m}


async def test_a_product_search_sees_only_the_drivers_serving_it(
    index: GeoIndex, clock: Clock
) -> None:
    t = clock.now_ms
    # The nearest drivers serve economy; the one accessible car is the farthest.
    await index.upsert([at(f"e{i}", LAT + 0.0001 * i, LNG, t) for i in range(1, 6)])
    await index.upsert([at("w1", LAT + 0.003, LNG, t), at("x1", LAT + 0.002, LNG, t)])
    for i in range(1, 6):
        await index.set_products(f"e{i}", ["economy"])
    await index.set_products("w1", ["wav", "economy"])
    await index.set_products("x1", ["xl", "economy"])
    assert ids(await index.nearest(LAT, LNG, 1, 5_000, product="wav")) == ["w1"]
    assert ids(await index.nearest(LAT, LNG, 5, 5_000, product="xl")) == ["x1"]
    assert ids(await index.nearest(LAT, LNG, 10, 5_000, product="economy")) == [
        "e1", "e2", "e3", "e4", "e5", "x1", "w1",
    ]  # fmt: skip
    assert ids(await index.nearest(LAT, LNG, 2, 5_000)) == ["e1", "e2"]  # no product: everyone
    assert await index.nearest(LAT, LNG, 5, 5_000, product="comfort") == []
    state = await index.get("w1")
    assert state is not None and state.products == ("economy", "wav")


async def test_default_products_apply_until_a_driver_has_its_own(
    make_index: MakeIndex, clock: Clock
) -> None:
    index = make_index(default_products=["economy"])
    t = clock.now_ms
    await index.upsert([at("d1", LAT, LNG, t), at("d2", LAT + 0.001, LNG, t)])
    assert ids(await index.nearest(LAT, LNG, 5, 1_000, product="economy")) == ["d1", "d2"]
    assert await index.set_products("d1", ["xl"])
    assert ids(await index.nearest(LAT, LNG, 5, 1_000, product="economy")) == ["d2"]
    assert ids(await index.nearest(LAT, LNG, 5, 1_000, product="xl")) == ["d1"]
    state = await index.get("d2")
    assert state is not None and state.products == ("economy",)


async def test_products_set_before_the_first_fix_apply_to_it_and_outlive_a_sweep(
    make_index: MakeIndex, clock: Clock
) -> None:
    index = make_index(ttl_ms=10_000)
    t = clock.now_ms
    assert not await index.set_products("early", ["wav"])  # no position yet
    await index.upsert([at("early", LAT, LNG, t - 20_000)])
    assert ids(await index.nearest(LAT, LNG, 5, 100, product="wav")) == []  # too old
    assert await index.expire(t - 10_000) == ["early"]
    await index.upsert([at("early", LAT, LNG, t)])
    assert ids(await index.nearest(LAT, LNG, 5, 100, product="wav")) == ["early"]


async def test_a_vehicle_change_mid_shift_leaves_no_stale_product_entry(
    index: GeoIndex, clock: Clock, raw_redis: Any
) -> None:
    t = clock.now_ms
    await index.upsert([at("d1", LAT, LNG, t)])
    await index.set_products("d1", ["economy", "xl"])
    await index.set_available("d1", False)
    await index.set_products("d1", ["wav"])  # changed while busy
    await index.set_available("d1", True)
    await index.upsert([at("d1", LAT + 0.6, LNG, t + 1)])  # and moved to another region
    await index.set_products("d1", ["comfort", "wav"])
    for product in ("economy", "xl"):
        assert await index.nearest(LAT + 0.6, LNG, 5, 1_000, product=product) == []
    for product in ("comfort", "wav"):
        assert ids(await index.nearest(LAT + 0.6, LNG, 5, 1_000, product=product)) == ["d1"]
    assert await index.nearest(LAT, LNG, 5, 1_000) == []  # nothing left in the old region
    if raw_redis is not None:
        assert await product_members(raw_redis) == {"comfort": {"d1"}, "wav": {"d1"}}
    await index.remove(["d1"])
    if raw_redis is not None:
        assert await product_members(raw_redis) == {}


async def test_the_sweep_takes_expired_drivers_out_of_every_product(
    make_index: MakeIndex, clock: Clock, raw_redis: Any
) -> None:
    index = make_index(ttl_ms=10_000)
    t = clock.now_ms
    await index.upsert([at("old", LAT, LNG, t - 20_000), at("new", LAT, LNG, t)])
    await index.set_products("old", ["economy", "wav"])
    await index.set_products("new", ["economy"])
    assert await index.expire(t - 10_000) == ["old"]
    assert ids(await index.nearest(LAT, LNG, 5, 100, product="economy")) == ["new"]
    if raw_redis is not None:
        assert await product_members(raw_redis) == {"economy": {"new"}}


async def test_bad_products_are_refused_before_any_write(index: GeoIndex) -> None:
    for bad in ["", "XL", "a b", "a,b", "{x}", "-", "x" * 33, 7]:
        with pytest.raises(InvalidQuery):
            await index.nearest(LAT, LNG, 1, 100, product=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidQuery):
            await index.set_products("d1", [bad])  # type: ignore[list-item]
    with pytest.raises(InvalidQuery):
        await index.set_products("d1", "economy")  # a string is not a list of products
    with pytest.raises(InvalidQuery):
        await index.set_products("d1", [f"p{i}" for i in range(17)])
    assert await index.get("d1") is None


# A driver exactly at the query radius, due north or south of the query point: the Lua
# scan's trig-free latitude reject computes R * |dlat| * RAD, which for these points comes
# out one float step above the haversine that decides the radius. Found by scanning
# random points; each case asserts that it still is such a point.
EXACT_RADIUS_CASES = [
    (-29.3917169112694, -1.6342388210851482, 0.02),
    (-43.87629070651185, 124.38127782352927, 0.001),
    (10.938412200156463, -142.40267739660274, 0.01),
]


@pytest.mark.parametrize(("lat", "lng", "dlat"), EXACT_RADIUS_CASES)
@pytest.mark.parametrize("north", [True, False])
@pytest.mark.parametrize("product", [None, "wav"])
async def test_a_driver_at_exactly_the_radius_due_north_or_south_is_found(
    index: GeoIndex,
    clock: Clock,
    lat: float,
    lng: float,
    dlat: float,
    north: bool,
    product: str | None,
) -> None:
    await index.upsert([at("edge", lat, lng, clock.now_ms)])
    await index.set_products("edge", ["wav"])
    stored = await index.get("edge")
    assert stored is not None
    qlat = stored.lat - dlat if north else stored.lat + dlat  # the driver due north/south
    radius = haversine_m(qlat, stored.lng, stored.lat, stored.lng)
    prefilter = 6371008.8 * abs(stored.lat - qlat) * (math.pi / 180)
    if north:  # the case as found: the reject's product above the radius
        assert prefilter > radius
    hits = await index.nearest(qlat, stored.lng, 1, radius, product=product)
    assert [(h.driver_id, h.distance_m) for h in hits] == [("edge", radius)]
