"""Known values and bounds of the H3 score arithmetic the index relies on."""

import math
import random

from h3.api import basic_int as h3
from hypothesis import given
from hypothesis import strategies as st

from geoindex.cells import (
    haversine_m,
    max_circumradius_m,
    position_score,
    region_of,
    score_latlng,
    score_range,
    score_to_cell,
)

lats = st.floats(-90, 90, allow_nan=False)
lngs = st.floats(-180, 180, allow_nan=False)


def test_haversine_known_values() -> None:
    # One degree of latitude on the mean-radius sphere: 2 * pi * R / 360.
    assert math.isclose(haversine_m(0, 0, 1, 0), 111_195.08, rel_tol=1e-6)
    assert haversine_m(10, 20, 10, 20) == 0.0
    # Across the antimeridian the short way round: 0.2 degrees of longitude at the equator.
    assert math.isclose(haversine_m(0, 179.9, 0, -179.9), 22_239.0, rel_tol=1e-4)


def test_score_of_a_known_cell() -> None:
    cell = h3.latlng_to_cell(37.7749, -122.4194, 15)
    assert score_to_cell(position_score(37.7749, -122.4194)) == cell
    assert position_score(37.7749, -122.4194) < 2**52


@given(lats, lngs)
def test_score_round_trips_within_a_metre(lat: float, lng: float) -> None:
    score = position_score(lat, lng)
    assert 0 <= score < 2**52
    qlat, qlng = score_latlng(score)
    assert haversine_m(lat, lng, qlat, qlng) <= 1.0


@given(lats, lngs, st.integers(0, 15))
def test_every_descendant_lies_in_its_ancestors_score_range(
    lat: float, lng: float, res: int
) -> None:
    score = position_score(lat, lng)
    ancestor = h3.cell_to_parent(score_to_cell(score), res)
    lo, hi = score_range(ancestor)
    assert lo <= score <= hi
    assert region_of(score, res) == ancestor


def test_sibling_ranges_are_disjoint_and_ordered() -> None:
    parent = h3.latlng_to_cell(51.5, -0.12, 7)
    ranges = sorted(score_range(c) for c in h3.cell_to_children(parent, 8))
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    plo, phi = score_range(parent)
    assert plo <= ranges[0][0] and ranges[-1][1] <= phi


def _circumradius(cell: int) -> float:
    clat, clng = h3.cell_to_latlng(cell)
    return max(haversine_m(clat, clng, a, b) for a, b in h3.cell_to_boundary(cell))


def test_max_circumradius_bounds_random_and_pentagon_cells() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        res = rng.randint(0, 15)
        lat = math.degrees(math.asin(rng.uniform(-1, 1)))
        cell = h3.latlng_to_cell(lat, rng.uniform(-180, 180), res)
        assert _circumradius(cell) <= max_circumradius_m(res)
    for res in range(16):
        for pentagon in h3.get_pentagons(res):
            for cell in h3.grid_disk(pentagon, 1):
                assert _circumradius(cell) <= max_circumradius_m(res)


def test_descendants_stay_within_half_a_circumradius_of_the_ancestor() -> None:
    # search.py's stop bound assumes a res-15 descendant's centre is never farther than
    # 1.5 x max_circumradius from its ancestor's centre; check adversarial outer children.
    rng = random.Random(11)
    for _ in range(400):
        res = rng.randint(0, 12)
        lat = math.degrees(math.asin(rng.uniform(-1, 1)))
        cell = h3.latlng_to_cell(lat, rng.uniform(-180, 180), res)
        clat, clng = h3.cell_to_latlng(cell)
        d = cell
        for r in range(res + 1, 16):
            kids = h3.cell_to_children(d, r)
            d = max(kids, key=lambda c: haversine_m(clat, clng, *h3.cell_to_latlng(c)))
        far = haversine_m(clat, clng, *h3.cell_to_latlng(d))
        assert far <= 1.5 * max_circumradius_m(res)
