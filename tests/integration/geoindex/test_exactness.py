"""Search is exact: the same ids in the same order as brute force over every driver.

Brute force runs over the positions the index stored (quantised to a res-15 cell centre,
at most 0.65 m from the fix), so both sides measure the same points with the same formula.
"""

from __future__ import annotations

import itertools
import math

import pytest
from h3.api import basic_int as h3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoindex import MAX_K, Position
from geoindex.cells import haversine_m
from geoindex.search import SearchConfig
from tests.integration.geoindex.conftest import Clock, MakeIndex

pytestmark = [pytest.mark.redis, pytest.mark.slow]

_prefixes = itertools.count()


def offset(lat: float, lng: float, dist_m: float, bearing: float) -> tuple[float, float]:
    d = dist_m / 6371008.8
    p1, l1 = math.radians(lat), math.radians(lng)
    p2 = math.asin(
        max(
            -1.0,
            min(1.0, math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing)),
        )
    )
    l2 = l1 + math.atan2(
        math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    lng2 = (math.degrees(l2) + 540.0) % 360.0 - 180.0
    return max(-90.0, min(90.0, math.degrees(p2))), lng2


_border_vertices = [h3.cell_to_boundary(h3.latlng_to_cell(52.5, 13.4, 5))[0]]
_pentagons = [h3.cell_to_latlng(p) for p in h3.get_pentagons(5)[:6]] + [
    h3.cell_to_latlng(p) for p in h3.get_pentagons(10)[:6]
]

centres = st.one_of(
    st.tuples(st.floats(-60, 60), st.floats(-180, 180)),  # anywhere
    st.sampled_from(_border_vertices),  # three regions meet here
    st.tuples(st.floats(-60, 60), st.sampled_from([180.0, -180.0, 179.999, -179.999])),
    st.tuples(st.floats(85, 90), st.floats(-180, 180)),  # above 85 degrees
    st.tuples(st.floats(-90, -85), st.floats(-180, 180)),
    st.sampled_from(_pentagons),  # next to an H3 pentagon
)

configs = st.sampled_from(
    [
        SearchConfig(),
        # Coarse regions, a small first step: exercises widening and many-region steps.
        SearchConfig(region_res=3, search_res=9, first_rings=1, max_rings=4),
    ]
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    lat, lng = draw(centres)
    spread = draw(st.sampled_from([30.0, 800.0, 20_000.0]))
    n = draw(st.integers(0, 40))
    drivers = []
    for _ in range(n):
        if drivers and draw(st.booleans()) and draw(st.booleans()):
            drivers.append(drivers[-1])  # the same spot: ties broken by id
        else:
            dist = draw(st.floats(0, 3 * spread))
            drivers.append(offset(lat, lng, dist, draw(st.floats(0, 2 * math.pi))))
    busy = draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=n // 3))
    old = draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=n // 4))
    qdist = draw(st.floats(0, 2 * spread))
    query = offset(lat, lng, qdist, draw(st.floats(0, 2 * math.pi)))
    if drivers and draw(st.booleans()):
        query = drivers[draw(st.integers(0, n - 1))]
    k = draw(st.integers(1, min(MAX_K, n + 5)))
    radius = draw(st.one_of(st.just(0.0), st.just(50_000.0), st.floats(0, min(4 * spread, 5e4))))
    return {
        "drivers": drivers,
        "busy": busy,
        "old": old,
        "query": query,
        "k": k,
        "radius": radius,
        "config": draw(configs),
    }


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
async def test_nearest_matches_brute_force(
    make_index: MakeIndex, clock: Clock, scenario: dict
) -> None:
    ttl = 60_000
    index = make_index(ttl_ms=ttl, config=scenario["config"], prefix=f"ex{next(_prefixes)}")
    now = clock.now_ms
    fixes = [
        Position(f"d{i:02d}", lat, lng, now - (ttl + 1 if i in scenario["old"] else 10))
        for i, (lat, lng) in enumerate(scenario["drivers"])
    ]
    await index.upsert(fixes)
    for i in scenario["busy"]:
        await index.set_available(f"d{i:02d}", False)

    qlat, qlng = scenario["query"]
    if scenario["drivers"] and scenario["query"] in scenario["drivers"]:
        stored = await index.get(f"d{scenario['drivers'].index(scenario['query']):02d}")
        assert stored is not None
        qlat, qlng = stored.lat, stored.lng  # radius 0 must find a driver at this very spot
    expected = []
    for i in range(len(fixes)):
        state = await index.get(f"d{i:02d}")
        assert state is not None
        if i in scenario["busy"] or i in scenario["old"]:
            continue
        d = haversine_m(qlat, qlng, state.lat, state.lng)
        if d <= scenario["radius"]:
            expected.append((d, state.driver_id))
    expected.sort()

    hits = await index.nearest(qlat, qlng, scenario["k"], scenario["radius"])
    assert [(h.distance_m, h.driver_id) for h in hits] == expected[: scenario["k"]]
    # Again, now planned from the density hint the first search left for this area.
    hits = await index.nearest(qlat, qlng, scenario["k"], scenario["radius"])
    assert [(h.distance_m, h.driver_id) for h in hits] == expected[: scenario["k"]]
    # And after a search nearby that needed almost no reach (a misleading hint).
    await index.nearest(qlat, qlng, 1, 0.0)
    hits = await index.nearest(qlat, qlng, scenario["k"], scenario["radius"])
    assert [(h.distance_m, h.driver_id) for h in hits] == expected[: scenario["k"]]


PRODUCTS = ("economy", "xl", "wav")
vehicles = st.one_of(st.none(), st.sets(st.sampled_from(PRODUCTS), max_size=3).map(sorted))


@st.composite
def product_scenarios(draw: st.DrawFn) -> dict:
    base = draw(scenarios())
    n = len(base["drivers"])
    indices = st.integers(0, max(n - 1, 0))
    return {
        **base,
        # None: the driver keeps the index's default products (economy).
        "first": [draw(vehicles) for _ in range(n)],
        "early": draw(st.sets(indices, max_size=n // 3)),  # vehicle set before the first fix
        "changed": draw(st.dictionaries(indices, vehicles.filter(bool), max_size=n // 2)),
        "moved": draw(st.sets(indices, max_size=n // 3)),  # a second fix after the change
        "swept": draw(st.booleans()),
    }


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=product_scenarios())
async def test_nearest_per_product_matches_brute_force_over_its_drivers(
    make_index: MakeIndex, clock: Clock, scenario: dict
) -> None:
    ttl = 60_000
    index = make_index(
        ttl_ms=ttl,
        config=scenario["config"],
        prefix=f"ex{next(_prefixes)}",
        default_products=["economy"],
    )
    now = clock.now_ms
    names = [f"d{i:02d}" for i in range(len(scenario["drivers"]))]
    for i in scenario["early"]:
        if scenario["first"][i] is not None:
            await index.set_products(names[i], scenario["first"][i])
    await index.upsert(
        [
            Position(names[i], lat, lng, now - (ttl + 1 if i in scenario["old"] else 10))
            for i, (lat, lng) in enumerate(scenario["drivers"])
        ]
    )
    for i, first in enumerate(scenario["first"]):
        if i not in scenario["early"] and first is not None:
            await index.set_products(names[i], first)
    for i in scenario["busy"]:
        await index.set_available(names[i], False)
    for i, vehicle in scenario["changed"].items():  # a new vehicle mid-shift
        await index.set_products(names[i], vehicle)
    for i in scenario["moved"]:
        lat, lng = scenario["drivers"][(i + 1) % len(names)]
        await index.upsert([Position(names[i], lat, lng, now - 5)])
    if scenario["swept"]:
        await index.expire(now - ttl)

    served = {
        name: tuple(
            scenario["changed"].get(i)
            or (scenario["first"][i] if scenario["first"][i] is not None else ["economy"])
        )
        for i, name in enumerate(names)
    }
    qlat, qlng = scenario["query"]
    fresh = []
    for i, name in enumerate(names):
        state = await index.get(name)
        if i in scenario["old"] and i not in scenario["moved"]:
            assert state is None or not scenario["swept"]
            continue
        assert state is not None and state.products == tuple(sorted(served[name]))
        if i not in scenario["busy"]:
            fresh.append((haversine_m(qlat, qlng, state.lat, state.lng), name))
    for product in (None, *PRODUCTS):
        expected = sorted(
            (d, name)
            for d, name in fresh
            if d <= scenario["radius"] and (product is None or product in served[name])
        )
        hits = await index.nearest(qlat, qlng, scenario["k"], scenario["radius"], product)
        assert [(h.distance_m, h.driver_id) for h in hits] == expected[: scenario["k"]]
