"""The compiled grid's own promises: its haversine is geoindex.cells' to the last bit, its
hits are the Neighbors the dataclass would build, ties go by id, and boxes are freed as
they empty."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from geoindex._gridknn import Grid, haversine_m
from geoindex.cells import haversine_m as python_haversine_m
from geoindex.model import Neighbor


def test_its_haversine_is_python_s_bit_for_bit() -> None:
    rng = random.Random(7)
    pairs = []
    for _ in range(100_000):
        lat, lng = rng.uniform(-90, 90), rng.uniform(-180, 180)
        spread = rng.choice([1e-7, 1e-4, 0.01, 1.0, 180.0])
        lat2 = max(-90.0, min(90.0, lat + rng.uniform(-spread, spread)))
        pairs.append((lat, lng, lat2, lng + rng.uniform(-spread, spread)))
    pairs += [(0.0, 0.0, 0.0, 180.0), (90.0, 0.0, -90.0, 0.0), (45.0, 10.0, 45.0, 10.0)]
    assert [haversine_m(*p) for p in pairs] == [python_haversine_m(*p) for p in pairs]


def test_hits_are_the_neighbors_the_dataclass_builds() -> None:
    grid = Grid()
    grid.add("a", 17, 40.0, -73.0)
    (hit,) = grid.nearest(40.001, -73.0, 5, 1_000.0, 0)
    expected = Neighbor("a", python_haversine_m(40.001, -73.0, 40.0, -73.0), 40.0, -73.0, 17)
    assert type(hit) is Neighbor
    assert hit == expected and hash(hit) == hash(expected) and repr(hit) == repr(expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit.lat = 0.0  # type: ignore[misc]


def test_ties_go_by_id_and_k_cuts_among_them() -> None:
    grid = Grid()
    for name in ("d3", "d1", "d4", "d2"):
        grid.add(name, 1, 10.0, 20.0)
    grid.add("d0", 1, 10.001, 20.0)
    hits = grid.nearest(10.0, 20.0, 3, 500.0, 0)
    assert [h.driver_id for h in hits] == ["d1", "d2", "d3"]
    assert {h.distance_m for h in hits} == {0.0}


def test_stale_fixes_are_never_found() -> None:
    grid = Grid()
    grid.add("old", 99, 10.0, 20.0)
    grid.add("new", 100, 10.01, 20.0)
    assert [h.driver_id for h in grid.nearest(10.0, 20.0, 2, 5_000.0, 100)] == ["new"]
    grid.add("old", 100, 10.0, 20.0)  # a newer fix on the spot
    assert [h.driver_id for h in grid.nearest(10.0, 20.0, 2, 5_000.0, 100)] == ["old", "new"]


def test_boxes_are_freed_as_they_empty() -> None:
    grid = Grid()
    assert grid.box_count() == 0
    rng = random.Random(3)
    # One driver driven across boxes of every size: one box per level remains.
    lat, lng = 48.0, 2.0
    for step in range(2_000):
        lat, lng = lat + rng.uniform(-0.01, 0.01), lng + rng.uniform(-0.02, 0.02)
        grid.add("mover", step, lat, lng)
    assert len(grid) == 1 and grid.box_count() == 7  # 125 m ... 512 km
    for i in range(5_000):
        grid.add(f"d{i}", 1, rng.uniform(-80, 80), rng.uniform(-180, 180))
    for i in range(5_000):
        grid.remove(f"d{i}")
    grid.remove("mover")
    assert len(grid) == 0 and grid.box_count() == 0
    assert grid.nearest(lat, lng, 1, 50_000.0, 0) == []


def test_a_search_reaches_as_far_as_its_radius_and_no_further() -> None:
    grid = Grid()
    grid.add("far", 1, 0.0, 179.95)
    d = python_haversine_m(0.0, -179.95, 0.0, 179.95)  # across the antimeridian: 11 km
    assert [h.driver_id for h in grid.nearest(0.0, -179.95, 1, d, 0)] == ["far"]
    assert grid.nearest(0.0, -179.95, 1, math.nextafter(d, 0.0), 0) == []
    world = math.pi * 6371008.8  # no radius is too large
    assert [h.driver_id for h in grid.nearest(0.0, 0.0, 1, world, 0)] == ["far"]


def test_bad_arguments_are_refused() -> None:
    grid = Grid()
    with pytest.raises(KeyError):
        grid.remove("nobody")
    with pytest.raises(ValueError):
        grid.nearest(0.0, 0.0, 0, 100.0, 0)
    with pytest.raises(ValueError):
        grid.nearest(0.0, 0.0, 1, -1.0, 0)
    with pytest.raises(ValueError):
        grid.nearest(math.nan, 0.0, 1, 100.0, 0)
    with pytest.raises(TypeError):
        grid.add(7, 1, 0.0, 0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        grid.add("a", 1, 0.0, math.inf)
    assert len(grid) == 0
