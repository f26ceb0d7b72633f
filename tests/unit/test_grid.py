"""The embedded backend's search grid (geoindex/_gridknn.c) against brute force, through
writes that move, remove and re-add drivers, with stale fixes."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from geoindex._gridknn import Grid
from geoindex.cells import haversine_m

centres = st.one_of(
    st.tuples(st.floats(-89, 89), st.floats(-180, 180)),
    st.tuples(st.floats(-60, 60), st.sampled_from([180.0, -180.0, 179.9999])),  # antimeridian
    st.tuples(st.sampled_from([90.0, -90.0, 89.9999, -89.9999]), st.floats(-180, 180)),
)


def near(lat: float, lng: float, dlat_m: float, dlng_m: float) -> tuple[float, float]:
    lat2 = max(-90.0, min(90.0, lat + math.degrees(dlat_m / 6371008.8)))
    scale = max(math.cos(math.radians(lat2)), 1e-6)
    lng2 = (lng + math.degrees(dlng_m / (6371008.8 * scale)) + 540.0) % 360.0 - 180.0
    return lat2, lng2


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    lat, lng = draw(centres)
    # Spreads around the box edges (125 m to 512 km, 4x apart), where a box's far side
    # is the trap.
    spread = draw(st.sampled_from([20.0, 150.0, 300.0, 700.0, 2_500.0, 10_000.0, 60_000.0]))
    offsets = st.floats(-2 * spread, 2 * spread)
    n = draw(st.one_of(st.integers(0, 8), st.integers(0, 60)))
    drivers = [near(lat, lng, draw(offsets), draw(offsets)) for _ in range(n)]
    if n and draw(st.booleans()):
        drivers += [drivers[0]] * 3  # the same spot: ties broken by id
    return {
        "drivers": drivers,
        "moves": draw(st.lists(st.tuples(st.integers(0, 70), offsets, offsets), max_size=20)),
        "removed": draw(st.sets(st.integers(0, 70), max_size=10)),
        "readded": draw(st.sets(st.integers(0, 70), max_size=5)),
        "stale": draw(st.sets(st.integers(0, 70), max_size=10)),
        "query": near(lat, lng, draw(offsets), draw(offsets)),
        "k": draw(st.integers(1, 12)),
        "radius": draw(st.one_of(st.just(0.0), st.just(50_000.0), st.floats(0, 50_000))),
    }


@settings(max_examples=300, deadline=None)
@given(scenario=scenarios())
def test_nearest_matches_brute_force_through_writes(scenario: dict) -> None:
    grid = Grid()
    live: dict[str, tuple[int, float, float]] = {}

    def put(name: str, ts: int, lat: float, lng: float) -> None:
        grid.add(name, ts, lat, lng)  # a move when listed
        live[name] = (ts, lat, lng)

    for i, (lat, lng) in enumerate(scenario["drivers"]):
        put(f"d{i:02d}", 50 if i in scenario["stale"] else 100, lat, lng)
    for i, dlat, dlng in scenario["moves"]:
        if f"d{i:02d}" in live:
            _, lat, lng = live[f"d{i:02d}"]
            put(f"d{i:02d}", 100, *near(lat, lng, dlat, dlng))
    for i in scenario["removed"]:
        if (gone := live.pop(f"d{i:02d}", None)) is not None:
            grid.remove(f"d{i:02d}")
            if i in scenario["readded"]:
                put(f"d{i:02d}", *gone)
    assert len(grid) == len(live)

    qlat, qlng = scenario["query"]
    if live and scenario["radius"] == 0.0:
        _, qlat, qlng = next(iter(live.values()))  # radius 0 finds a driver on the spot
    k, radius = scenario["k"], scenario["radius"]
    expected = sorted(
        (d, name)
        for name, (ts, lat, lng) in live.items()
        if ts >= 100 and (d := haversine_m(qlat, qlng, lat, lng)) <= radius
    )[:k]
    hits = grid.nearest(qlat, qlng, k, radius, 100)
    assert [(h.distance_m, h.driver_id) for h in hits] == expected
    stored = [(live[name][1], live[name][2], live[name][0]) for _, name in expected]
    assert [(h.lat, h.lng, h.ts_ms) for h in hits] == stored


def test_a_driver_at_exactly_the_radius_due_north_or_south_is_found() -> None:
    for north in (True, False):
        grid = Grid()
        lat, lng = 40.0, -73.0
        grid.add("edge", 1, lat, lng)
        dlat = math.degrees(1_000.0 / 6371008.8)
        qlat = lat - dlat if north else lat + dlat
        radius = haversine_m(qlat, lng, lat, lng)
        hits = grid.nearest(qlat, lng, 1, radius, 0)
        assert [(h.distance_m, h.driver_id) for h in hits] == [(radius, "edge")]
        assert grid.nearest(qlat, lng, 1, math.nextafter(radius, 0.0), 0) == []
