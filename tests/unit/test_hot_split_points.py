"""The hot-split bench's points: drawn inside the city's cells, on a shared border, and
inside one fine region (the bench's comparisons rest on where they fall)."""

from __future__ import annotations

import argparse
import random

from h3.api import basic_int as h3

from loadtest.bench.hot_split import DEFAULT_CELLS, border_points, inside_points
from loadtest.bench.scaleout_load import cell_point, homes, near_point


def test_city_points_fall_in_the_given_cells_and_reach_each() -> None:
    rng = random.Random(3)
    cells = [h3.latlng_to_cell(*cell_point(rng, DEFAULT_CELLS), 5) for _ in range(600)]
    assert set(cells) == set(DEFAULT_CELLS)


def test_border_points_lie_on_the_edge_of_the_two_cells() -> None:
    a, b = DEFAULT_CELLS[0], DEFAULT_CELLS[2]
    points = border_points(a, b, 200, random.Random(4))
    assert {h3.latlng_to_cell(lat, lng, 5) for lat, lng in points} <= {a, b}
    edge_km = h3.average_hexagon_edge_length(5, "km")
    ca, cb = h3.cell_to_latlng(a), h3.cell_to_latlng(b)
    for p in points:
        # As far from one cell's centre as from the other's: on the edge between them.
        gap = h3.great_circle_distance(p, ca, "km") - h3.great_circle_distance(p, cb, "km")
        assert abs(gap) < 0.1 * edge_km  # a centre is 1.7 edges nearer one than the other


def test_inside_points_stay_in_one_fine_region() -> None:
    points = inside_points(DEFAULT_CELLS[0], 7, 200, random.Random(5))
    centre = h3.cell_to_center_child(DEFAULT_CELLS[0], 7)
    assert {h3.latlng_to_cell(lat, lng, 7) for lat, lng in points} == {centre}


def test_a_moving_drivers_fixes_stay_within_reach_of_its_home_and_in_the_city() -> None:
    rng = random.Random(5)
    cells = frozenset(DEFAULT_CELLS)
    home = cell_point(rng, DEFAULT_CELLS)
    far = 0.0
    for _ in range(500):
        lat, lng = near_point(rng, home, 300.0, cells)
        assert h3.latlng_to_cell(lat, lng, 5) in cells
        far = max(far, h3.great_circle_distance(home, (lat, lng), "m"))
    assert 250.0 < far <= 300.5  # the whole disk is drawn, nothing past it


def test_the_writers_homes_are_where_the_seeding_puts_the_drivers() -> None:
    a = argparse.Namespace(cells=",".join(f"{c:x}" for c in DEFAULT_CELLS), drivers=50)
    rng = random.Random(0)
    assert homes(a) == [cell_point(rng, DEFAULT_CELLS) for _ in range(50)]
