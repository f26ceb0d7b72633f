"""The stop bounds of a search plan are true lower bounds, and plans terminate."""

import math

from h3.api import basic_int as h3
from hypothesis import given, settings
from hypothesis import strategies as st

from geoindex.cells import haversine_m, position_score, score_latlng, score_to_cell
from geoindex.search import SearchConfig, first_step, is_complete, next_step, plan_step

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
def test_every_driver_outside_the_scanned_stages_is_beyond_the_bound(
    q: tuple[float, float], res: int, rings: int, probes: list[tuple[float, float]]
) -> None:
    lat, lng = q
    step = plan_step(lat, lng, res, rings, CONFIG)
    origin = h3.latlng_to_cell(lat, lng, res)
    scale = h3.average_hexagon_edge_length(res, "m") / 100
    for stage, bound in enumerate(step.bounds):
        scanned = set(h3.grid_disk(origin, stage + 1))
        for dist, bearing in probes:
            plat, plng = _offset(lat, lng, dist * scale, bearing)
            score = position_score(plat, plng)
            if h3.cell_to_parent(score_to_cell(score), res) in scanned:
                continue
            assert haversine_m(lat, lng, *score_latlng(score)) >= bound


@given(st.floats(-80, 80), st.floats(-180, 180), st.integers(1, 100), st.floats(0, 50_000))
@settings(max_examples=60, deadline=None)
def test_widening_terminates_within_the_radius(lat: float, lng: float, k: int, r: float) -> None:
    # With no drivers at all, steps must widen until they cover the radius.
    step = first_step(lat, lng, CONFIG)
    for _ in range(20):
        if is_complete(step, k, r, []):
            return
        prev = step.bounds[-1]
        step = next_step(lat, lng, k, r, step, [], CONFIG)
        assert step.bounds[-1] > prev
    raise AssertionError("search did not terminate in 20 steps")


def test_first_step_is_a_fine_disk_around_the_query() -> None:
    step = first_step(40.0, -73.9, CONFIG)
    assert step.disk.res == CONFIG.search_res
    assert len(step.bounds) == CONFIG.first_rings
    assert list(step.bounds) == sorted(step.bounds)
