"""The stop bounds of a search plan are true lower bounds, and plans terminate."""

import math

import numpy as np
import pytest
from h3.api import basic_int as h3
from hypothesis import given, settings
from hypothesis import strategies as st

from geoindex import MAX_RADIUS_M
from geoindex.cells import (
    haversine_m,
    max_circumradius_m,
    position_score,
    score_latlng,
    score_to_cell,
)
from geoindex.search import (
    DESCENDANT_SPREAD,
    SearchConfig,
    disk,
    first_step,
    is_complete,
    next_step,
    plan_step,
    sized_step,
)

CONFIG = SearchConfig()


def _offset(lat: float, lng: float, dist_m: float, bearing: float) -> tuple[float, float]:
    d = dist_m / 6371008.8
    p1, l1 = math.radians(lat), math.radians(lng)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(
        math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180


query_points = st.one_of(
    st.tuples(st.floats(-89.9, 89.9), st.floats(-180, 180)),
    st.tuples(st.floats(85, 90), st.floats(-180, 180)),  # polar
    st.tuples(st.floats(-5, 5), st.floats(179.5, 180) | st.floats(-180, -179.5)),  # antimeridian
    # next to a res-10 pentagon
    st.sampled_from([h3.cell_to_latlng(p) for p in h3.get_pentagons(10)]),
)


@settings(max_examples=150, deadline=None)
@given(
    q=query_points,
    res=st.integers(5, 11),
    rings=st.integers(1, 5),
    probes=st.lists(
        st.tuples(st.floats(0, 3000), st.floats(0, 2 * math.pi)), min_size=30, max_size=30
    ),
)
def test_cell_bounds_and_the_covered_distance_are_true_lower_bounds(
    q: tuple[float, float], res: int, rings: int, probes: list[tuple[float, float]]
) -> None:
    lat, lng = q
    step = plan_step(lat, lng, MAX_RADIUS_M, res, rings, CONFIG)
    origin = h3.latlng_to_cell(lat, lng, res)
    in_disk = set(h3.grid_disk(origin, rings))
    circ = max_circumradius_m(res)
    scale = h3.average_hexagon_edge_length(res, "m") / 100
    for dist, bearing in probes:
        plat, plng = _offset(lat, lng, dist * scale, bearing)
        score = position_score(plat, plng)
        d = haversine_m(lat, lng, *score_latlng(score))
        cell = h3.cell_to_parent(score_to_cell(score), res)
        if cell in in_disk:
            centre = haversine_m(lat, lng, *h3.cell_to_latlng(cell))
            assert d >= centre - DESCENDANT_SPREAD * circ - 1
        else:
            assert d >= step.covered


@settings(max_examples=100, deadline=None)
@given(q=query_points, radius=st.floats(0, 5_000))
def test_scans_run_nearest_bound_first_and_skip_cells_past_the_radius(
    q: tuple[float, float], radius: float
) -> None:
    step = first_step(*q, radius, CONFIG)
    lat, lng = q
    circ = max_circumradius_m(step.res)
    for rows in step.scans.values():
        bounds = rows[:, 2]
        assert np.all(np.diff(bounds) >= 0)
        assert np.all(bounds <= min(step.covered, radius) + 1e-9)
        assert np.all(rows[:, 0] <= rows[:, 1])
        # A row's bound is its own cell's (the one its score range spans).
        for lo, _, bound in rows.tolist():
            cell = h3.cell_to_parent(score_to_cell(int(lo)), step.res)
            centre = haversine_m(lat, lng, *h3.cell_to_latlng(cell))
            assert bound == pytest.approx(centre - DESCENDANT_SPREAD * circ - 1, abs=1e-6)


@given(st.floats(-80, 80), st.floats(-180, 180), st.integers(1, 100), st.floats(0, 50_000))
@settings(max_examples=60, deadline=None)
def test_widening_terminates_within_the_radius(lat: float, lng: float, k: int, r: float) -> None:
    # With no drivers at all, steps must widen until they cover the radius.
    step = first_step(lat, lng, r, CONFIG)
    for _ in range(20):
        if is_complete(step, k, r, []):
            return
        prev = step.covered
        step = next_step(lat, lng, k, r, step, [], CONFIG)
        assert step.covered > prev
    raise AssertionError("search did not terminate in 20 steps")


def test_first_step_is_a_fine_disk_around_the_query() -> None:
    step = first_step(40.0, -73.9, MAX_RADIUS_M, CONFIG)
    assert step.res == CONFIG.search_res
    # Three rings of 76 m cells cover a few hundred metres, less the margins.
    assert 150 < step.covered < 600


def test_sparse_drivers_are_searched_in_fewer_coarser_cells() -> None:
    # The same reach: ten drivers within 1.2 km (a rare product) against ten within 100 m
    # (the density of every driver in a city centre).
    sparse = sized_step(40.0, -73.9, 5_000, 1_500, CONFIG, 10 / (math.pi * 1_200**2))
    dense = sized_step(40.0, -73.9, 5_000, 1_500, CONFIG, 10 / (math.pi * 100**2))
    assert dense.res == sized_step(40.0, -73.9, 5_000, 1_500, CONFIG).res
    assert sparse.res < dense.res
    assert sparse.covered >= 1_500 and dense.covered >= 1_500
    cells = [sum(len(rows) for rows in s.scans.values()) for s in (sparse, dense)]
    assert cells[0] < cells[1] / 2


def test_a_reach_of_denormal_metres_plans_the_finest_disk() -> None:
    # A recent search of radius 5e-324 m left that as its reach; squared it is 0.0.
    step = first_step(2e-6, 2e-6, 5e-324, CONFIG, hint_m=5e-324, k=5)
    assert step.res == CONFIG.search_res


@settings(max_examples=100, deadline=None)
@given(q=query_points, res=st.integers(6, 11), rings=st.integers(1, 6), radius=st.floats(0, 5_000))
def test_a_step_scans_every_disk_cell_that_may_hold_a_hit_in_its_own_region(
    q: tuple[float, float], res: int, rings: int, radius: float
) -> None:
    # Regions at res 6 to 11 with a step one to five resolutions finer: most disks span
    # several regions.
    config = SearchConfig(region_res=res - _finer_by(res), search_res=res)
    lat, lng = q
    step = plan_step(lat, lng, radius, res, rings, config)
    circ = max_circumradius_m(res)
    wanted = set()
    for cell in h3.grid_disk(h3.latlng_to_cell(lat, lng, res), rings):
        bound = haversine_m(lat, lng, *h3.cell_to_latlng(cell)) - DESCENDANT_SPREAD * circ - 1
        if bound < min(step.covered, radius) - 1e-6:
            wanted.add(cell)
    scanned = set()
    for region, rows in step.scans.items():
        for lo in rows[:, 0].tolist():
            cell = h3.cell_to_parent(score_to_cell(int(lo)), res)
            assert h3.cell_to_parent(cell, config.region_res) == region
            scanned.add(cell)
    assert wanted <= scanned


def _finer_by(res: int) -> int:
    return 1 + res % 5


@settings(max_examples=200, deadline=None)
@given(q=query_points, res=st.integers(5, 12), rings=st.integers(0, 12), data=st.data())
def test_a_disk_is_h3_s_disk_with_its_cells_centres_and_regions_and_the_ring_outside(
    q: tuple[float, float], res: int, rings: int, data: st.DataObject
) -> None:
    region_res = data.draw(st.integers(0, res))
    origin = h3.latlng_to_cell(*q, res)
    d = disk(origin, rings, region_res)
    lohi = np.frombuffer(d.lohi).reshape(-1, 2)
    xyz = np.frombuffer(d.xyz).reshape(-1, 3)
    regions = np.frombuffer(d.region_index, np.int64)
    # A score range ends at the cell's own score (its unused digits all 7s): the cell,
    # but for the resolution in its header.
    keep = ~(0xF << 52)
    cells = [(score_to_cell(int(hi)) & keep) | (res << 52) for hi in lohi[:, 1].tolist()]
    assert d.res == res and d.size == len(cells)
    assert sorted(cells) == sorted(h3.grid_disk(origin, rings))
    span = (1 << (3 * (15 - res))) - 1
    assert (lohi[:, 1] - lohi[:, 0] == span).all()
    assert [d.regions[i] for i in regions.tolist()] == [
        h3.cell_to_parent(c, region_res) for c in cells
    ]
    outer = h3.grid_ring(origin, rings + 1)
    assert len(xyz) == d.size + len(outer)

    def unit(cell: int) -> list[float]:
        lat, lng = map(math.radians, h3.cell_to_latlng(cell))
        return [math.cos(lat) * math.cos(lng), math.cos(lat) * math.sin(lng), math.sin(lat)]

    assert np.abs(xyz[: d.size] - [unit(c) for c in cells]).max() < 1e-14
    ring = np.array([unit(c) for c in outer]).reshape(-1, 3)
    got = xyz[d.size :]
    assert np.abs(got[np.lexsort(got.T)] - ring[np.lexsort(ring.T)]).max() < 1e-14
