"""Point-in-area through the compiled cells answers exactly what shapely answers on the
same polygon: near every edge and vertex, in holes, across the antimeridian and at high
latitudes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from h3.api import basic_int as h3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon as ShapelyPolygon

from dispatch.domain.areas import Area, AreaKind, Ring
from dispatch.service_layer.area_batch import cells_of, holding_many, holding_near_many
from dispatch.service_layer.area_grid import EXACT, GRID, IN, OUT, square
from dispatch.service_layer.area_index import AreaIndex, ancestor, build_index, compile_area
from dispatch.service_layer.area_shapes import area_geometry

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def star(lng: float, lat: float, radius_deg: float, n: int, jag: float, turn: float) -> Ring:
    """A star-shaped ring (never self-intersecting), lng radius widened with latitude."""
    stretch = 1 / max(math.cos(math.radians(lat)), 0.1)
    points = []
    for i in range(n):
        a = turn + 2 * math.pi * i / n
        r = radius_deg * (1 - jag * ((i * 7919) % 5) / 5)
        points.append((lng + r * stretch * math.cos(a), lat + r * math.sin(a)))
    return (*points, points[0])


def wrap(lng: float) -> float:
    return (lng + 180.0) % 360.0 - 180.0


def wrapped(ring: Ring) -> Ring:
    return tuple((wrap(x), y) for x, y in ring)


def near_boundary(ring: Ring, t: float, off: float) -> tuple[float, float]:
    """A point a fraction `t` along the ring's perimeter, `off` degrees off the edge."""
    i = int(t * (len(ring) - 1)) % (len(ring) - 1)
    (x0, y0), (x1, y1) = ring[i], ring[i + 1]
    f = (t * (len(ring) - 1)) % 1
    dx, dy = x1 - x0, y1 - y0
    norm = math.hypot(dx, dy) or 1.0
    return x0 + f * dx - dy / norm * off, y0 + f * dy + dx / norm * off


offsets = st.sampled_from([0.0, 1e-9, -1e-9, 1e-7, -1e-7, 1e-5, -1e-5, 1e-3, -1e-3, 0.02])


def batch_agrees(index: AreaIndex, points: list[tuple[float, float]]) -> None:
    """The batch lookup answers every point as the one-at-a-time lookup does."""
    lngs = np.asarray([lng for lng, _ in points])
    lats = np.asarray([lat for _, lat in points])
    offsets, areas = holding_many(index, lats, lngs)
    for i, (lng, lat) in enumerate(points):
        want = sorted(index.areas.index(c) for c in index.holding(lat, lng))
        assert sorted(areas[offsets[i] : offsets[i + 1]].tolist()) == want, (lng, lat)


def check_points(area: Area, points: list[tuple[float, float]]) -> None:
    index = build_index([area])
    truth = area_geometry(area)
    points = [(wrap(lng), max(-90.0, min(90.0, lat))) for lng, lat in points]
    for lng, lat in points:
        got = bool(index.holding(lat, lng))
        want = bool(shapely.intersects_xy(truth, lng, lat))
        assert got == want, (lng, lat, want)
    batch_agrees(index, points)


@FAST
@given(
    lng=st.floats(-179, 179),
    lat=st.floats(-80, 80),
    radius=st.floats(0.002, 0.3),
    n=st.integers(3, 60),
    jag=st.floats(0, 0.6),
    turn=st.floats(0, 6.3),
    ts=st.lists(st.tuples(st.floats(0, 1), offsets), min_size=20, max_size=60),
)
def test_points_near_edges_and_vertices_agree_with_shapely(
    lng: float, lat: float, radius: float, n: int, jag: float, turn: float, ts: list
) -> None:
    ring = star(lng, lat, radius, n, jag, turn)
    area = Area("a", AreaKind.SERVICE_AREA, "a", ((wrapped(ring),),))
    points = [near_boundary(ring, t, off) for t, off in ts]
    points += [(x + dx, y + dy) for x, y in ring for dx, dy in ((1e-9, 0), (0, -1e-9))]
    check_points(area, points)


@FAST
@given(
    lat=st.floats(-60, 60),
    lng=st.floats(-170, 170),
    ts=st.lists(st.tuples(st.floats(0, 1), offsets), min_size=20, max_size=60),
)
def test_holes_are_outside(lat: float, lng: float, ts: list) -> None:
    outer = star(lng, lat, 0.2, 24, 0.1, 0.3)
    hole = star(lng, lat, 0.05, 9, 0.3, 0.1)
    area = Area("a", AreaKind.NO_PICKUP, "a", ((outer, hole),))
    points = [near_boundary(hole, t, off) for t, off in ts] + [(lng, lat)]
    check_points(area, points)
    assert not build_index([area]).holding(lat, lng)  # the hole's centre


@FAST
@given(
    lat=st.floats(-70, 70),
    centre=st.floats(179.0, 181.0),
    radius=st.floats(0.01, 0.8),
    n=st.integers(3, 40),
    ts=st.lists(st.tuples(st.floats(0, 1), offsets), min_size=20, max_size=60),
)
def test_polygons_across_the_antimeridian(
    lat: float, centre: float, radius: float, n: int, ts: list
) -> None:
    ring = star(centre, lat, radius, n, 0.2, 0.5)  # unwrapped: may pass 180
    area = Area("a", AreaKind.AIRPORT, "a", ((wrapped(ring),),))
    # The reference: the same ring in continuous longitudes, the point tried both ways.
    plain = ShapelyPolygon(ring)
    index = build_index([area])
    for t, off in ts:
        x, y = near_boundary(ring, t, off)
        if plain.exterior.distance(shapely.Point(x, y)) < 1e-9:
            continue  # on the edge: wrapping moves the last bits, either answer is right
        want = any(shapely.intersects_xy(plain, x + s, y) for s in (-360.0, 0.0, 360.0))
        assert bool(index.holding(y, wrap(x))) == want, (x, y)
    batch_agrees(index, [(wrap(x), y) for x, y in (near_boundary(ring, t, off) for t, off in ts)])


@FAST
@given(
    lat=st.floats(70, 84),
    sign=st.sampled_from([1, -1]),
    lng=st.floats(-180, 180),
    ts=st.lists(st.tuples(st.floats(0, 1), offsets), min_size=20, max_size=60),
)
def test_high_latitudes(lat: float, sign: int, lng: float, ts: list) -> None:
    ring = star(lng, sign * lat, 0.3, 17, 0.3, 0.2)
    ring = tuple((x, max(-85.0, min(85.0, y))) for x, y in ring)
    area = Area("a", AreaKind.SERVICE_AREA, "a", ((wrapped(ring),),))
    plain = ShapelyPolygon(ring)
    index = build_index([area])
    for t, off in ts:
        x, y = near_boundary(ring, t, off)
        if plain.exterior.distance(shapely.Point(x, y)) < 1e-9:
            continue  # on the edge: wrapping moves the last bits, either answer is right
        want = any(shapely.intersects_xy(plain, x + s, y) for s in (-360.0, 0.0, 360.0))
        assert bool(index.holding(y, wrap(x))) == want, (x, y)
    batch_agrees(index, [(wrap(x), y) for x, y in (near_boundary(ring, t, off) for t, off in ts)])


def test_overlapping_areas_are_all_found() -> None:
    big = star(13.4, 52.5, 0.2, 30, 0, 0)
    small = star(13.4, 52.5, 0.01, 8, 0, 0)
    areas = [
        Area("city", AreaKind.SERVICE_AREA, "city", ((big,),)),
        Area("ber", AreaKind.AIRPORT, "ber", ((small,),)),
    ]
    index = build_index(areas)
    assert {c.area.id for c in index.holding(52.5, 13.4)} == {"city", "ber"}
    assert {c.area.id for c in index.holding(52.6, 13.4)} == {"city"}
    assert not index.holding(53.0, 13.4)
    offsets, found = holding_many(index, np.asarray([52.5, 52.6, 53.0]), np.asarray([13.4] * 3))
    assert [sorted(found[offsets[i] : offsets[i + 1]].tolist()) for i in range(3)] == [
        [0, 1],
        [0],
        [],
    ]


def test_most_of_a_large_area_answers_without_the_exact_test() -> None:
    c = compile_area(
        Area("city", AreaKind.SERVICE_AREA, "c", ((star(13.4, 52.5, 0.2, 200, 0.1, 0),),))
    )
    inside_area = sum(h3.cell_area(x, "km^2") for x in c.inside)
    edge_area = sum(h3.cell_area(x, "km^2") for x in c.edge)
    assert inside_area > 5 * edge_area


def test_ancestor_by_bits_is_h3s_parent() -> None:
    cell = h3.latlng_to_cell(-33.9, 151.2, 10)
    for res in range(0, 11):
        assert ancestor(cell, res) == h3.cell_to_parent(cell, res)


@FAST
@given(
    lng=st.floats(-170, 170),
    lat=st.floats(-75, 75),
    big=st.floats(0.01, 0.5),
    n=st.integers(3, 60),
    jag=st.floats(0, 0.6),
    ts=st.lists(st.tuples(st.floats(0, 1), offsets, st.booleans()), min_size=10, max_size=30),
    turns=st.lists(st.floats(0, 6.3), min_size=4, max_size=8),
)
def test_a_point_moved_within_its_cell_less_than_holding_near_says_keeps_its_areas(
    lng: float, lat: float, big: float, n: int, jag: float, ts: list, turns: list
) -> None:
    """An area compiled at the lookup's resolution inside one compiled coarser (for a
    large one); moves to the edge of the distance allowed, in every direction."""
    outer = star(lng, lat, big, n, jag, 0.1)
    inner = star(lng, lat, 0.004, max(3, n // 4), jag, 0.7)
    areas = [
        Area("city", AreaKind.SERVICE_AREA, "city", ((outer,),)),
        Area("ber", AreaKind.AIRPORT, "ber", ((inner,),)),
    ]
    index = build_index(areas)
    truth = [area_geometry(a) for a in areas]
    for t, off, near_inner in ts:
        x, y = near_boundary(inner if near_inner else outer, t, off * 0.1)
        cell = index.cell_of(y, x)
        found, near = index.holding_near(cell, y, x)
        held = [a.id in {c.area.id for c in found} for a in areas]
        assert held == [bool(shapely.intersects_xy(g, x, y)) for g in truth]
        step = min(near, 0.01)  # no boundary in the cell: anywhere in it
        for turn in turns:
            qx, qy = x + 0.999 * step * math.cos(turn), y + 0.999 * step * math.sin(turn)
            if index.cell_of(qy, qx) != cell:
                continue  # the promise is for moves within the cell
            assert held == [bool(shapely.intersects_xy(g, qx, qy)) for g in truth], (x, y, qx, qy)


@FAST
@given(
    lng=st.floats(-170, 170),
    lat=st.floats(-75, 75),
    radius=st.floats(0.002, 0.05),
    n=st.integers(3, 60),
    jag=st.floats(0, 0.6),
    seed=st.integers(0, 2**32 - 1),
)
def test_points_scattered_over_boundary_cells_agree_with_shapely(
    lng: float, lat: float, radius: float, n: int, jag: float, seed: int
) -> None:
    """Most points of a boundary cell are answered by its raster (area_grid): points
    anywhere in the cells the boundary crosses, so every kind of square is met."""
    ring = star(lng, lat, radius, n, jag, 0.3)
    area = Area("a", AreaKind.SERVICE_AREA, "a", ((ring,),))
    c = compile_area(area)
    rng = np.random.default_rng(seed)
    points = []
    for cell in rng.choice(np.asarray(c.edge, dtype=np.int64), size=min(40, len(c.edge))):
        corners = np.asarray(h3.cell_to_boundary(int(cell)))  # (lat, lng) rows
        (ylo, xlo), (yhi, xhi) = corners.min(axis=0), corners.max(axis=0)
        points += [(rng.uniform(xlo, xhi), rng.uniform(ylo, yhi)) for _ in range(10)]
    check_points(area, points)


@FAST
@given(
    lng=st.floats(-170, 170),
    lat=st.floats(-75, 75),
    big=st.floats(0.01, 0.3),
    n=st.integers(3, 40),
    ts=st.lists(st.tuples(st.floats(0, 1), offsets, st.booleans()), min_size=5, max_size=30),
)
def test_a_batch_says_what_holding_near_says_point_by_point(
    lng: float, lat: float, big: float, n: int, ts: list
) -> None:
    outer = star(lng, lat, big, n, 0.3, 0.1)
    inner = star(lng, lat, 0.004, max(3, n // 4), 0.3, 0.7)
    index = build_index(
        [
            Area("city", AreaKind.SERVICE_AREA, "city", ((outer,),)),
            Area("ber", AreaKind.AIRPORT, "ber", ((inner,),)),
        ]
    )
    points = [near_boundary(inner if near_inner else outer, t, off) for t, off, near_inner in ts]
    lngs = np.asarray([x for x, _ in points])
    lats = np.asarray([y for _, y in points])
    cells = cells_of(lats, lngs)
    offsets, held, near = holding_near_many(index, cells, lats, lngs)
    for i, (x, y) in enumerate(points):
        found, want_near = index.holding_near(int(cells[i]), y, x)
        assert int(cells[i]) == index.cell_of(y, x)
        assert sorted(held[offsets[i] : offsets[i + 1]].tolist()) == sorted(
            index.areas.index(c) for c in found
        )
        assert near[i] == pytest.approx(want_near, rel=1e-9, abs=1e-12)


def test_most_squares_of_boundary_cells_answer_without_the_exact_test() -> None:
    c = compile_area(
        Area("city", AreaKind.SERVICE_AREA, "c", ((star(13.4, 52.5, 0.02, 200, 0.1, 0),),))
    )
    codes = [square(how[8], k) for how in c.local if how for k in range(GRID * GRID)]
    assert {IN, OUT, EXACT} == set(codes)
    assert codes.count(EXACT) < 0.5 * len(codes)


def test_the_shared_tuples_of_inside_cells_are_left_out_of_garbage_collection() -> None:
    """A full collection walks none of an index's area sets (tens of thousands on a city
    of districts): they hold only areas, which hold none of them, so no cycle runs
    through them; they stay correct and are freed with the index."""
    import gc
    import sys

    ring = star(13.4, 52.5, 0.01, 40, 0.2, 0.1)
    index = build_index([Area("a", AreaKind.NO_PICKUP, "a", ((ring,),), 0.0)])
    held = index.holding(52.5, 13.4)  # well inside: the cell's shared tuple
    assert isinstance(held, tuple) and [c.area.id for c in held] == ["a"]
    assert not gc.is_tracked(held)
    assert gc.is_tracked(index.areas[0])  # the areas themselves are collected as ever
    del index
    gc.collect()
    assert sys.getrefcount(held) == 2  # `held` and the call's: the index let go of it
