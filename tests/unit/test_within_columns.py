"""The vectorised order of within_columns is ranking by (haversine_m, id) in Python, bit
for bit: ties (drivers on
one spot), distances numpy rounds differently from libm, and drivers on the radius."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geoindex.cells import haversine_m
from geoindex.columns import nearest_rows
from geoindex.model import DriverState


def nearest_first(
    lat: float, lng: float, radius_m: float, limit: int, states: list[DriverState]
) -> list[DriverState]:
    """The reference order: each driver's exact distance, then its id."""
    ranked = [
        (d, s.driver_id, s)
        for s in states
        if (d := haversine_m(lat, lng, s.lat, s.lng)) <= radius_m
    ]
    ranked.sort(key=lambda row: (row[0], row[1]))
    return [s for _, _, s in ranked[:limit]]


spots = st.tuples(st.floats(-89.9, 89.9), st.floats(-180, 180))


@st.composite
def areas(draw: st.DrawFn) -> tuple[float, float, float, int, list[tuple[float, float]]]:
    lat, lng = draw(spots)
    n = draw(st.integers(0, 60))
    points: list[tuple[float, float]] = []
    for _ in range(n):
        if points and draw(st.booleans()):
            points.append(points[draw(st.integers(0, len(points) - 1))])  # the same spot
        else:
            points.append(
                (
                    max(-90.0, min(90.0, lat + draw(st.floats(-0.3, 0.3)))),
                    lng + draw(st.floats(-0.3, 0.3)),
                )
            )
    if points and draw(st.booleans()):  # a driver exactly on the radius
        radius = haversine_m(lat, lng, *points[draw(st.integers(0, n - 1))])
    else:
        radius = draw(st.floats(0, 50_000))
    return lat, lng, min(radius, 50_000.0), draw(st.integers(1, n + 2)), points


@settings(max_examples=400, deadline=None)
@given(area=areas())
def test_nearest_rows_orders_as_nearest_first(
    area: tuple[float, float, float, int, list[tuple[float, float]]],
) -> None:
    lat, lng, radius, limit, points = area
    ids = [f"d{(i * 7919) % 101:03d}" for i in range(len(points))]  # ties not in row order
    states = [DriverState(i, p[0], p[1], 0, None, True) for i, p in zip(ids, points, strict=True)]
    lats = np.array([p[0] for p in points], np.float64)
    lngs = np.array([p[1] for p in points], np.float64)
    got = nearest_rows(lat, lng, radius, limit, ids, lats, lngs)
    assert [ids[r] for r in got.tolist()] == [
        s.driver_id for s in nearest_first(lat, lng, radius, limit, states)
    ]


def test_a_dense_area_is_ordered_by_the_exact_distances() -> None:
    """2,000 drivers within 8 km, one row each: the order is the exact distances' order."""
    rng = np.random.default_rng(5)
    lats, lngs = 52.5 + rng.uniform(-0.1, 0.1, 2000), 13.4 + rng.uniform(-0.1, 0.1, 2000)
    exact = [haversine_m(52.5, 13.4, a, b) for a, b in zip(lats, lngs, strict=True)]
    ids = [f"d{i:04d}" for i in range(2000)]
    order = nearest_rows(52.5, 13.4, 50_000.0, 2000, ids, lats, lngs).tolist()
    assert [exact[r] for r in order] == sorted(exact)
