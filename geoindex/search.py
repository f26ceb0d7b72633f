"""k-nearest search plans: which score ranges to scan, in what order, and when to stop.

No I/O here. A step covers the H3 disk of `rings` rings around the query's cell at one
resolution. Every cell gets a lower bound on the distance from the query to any driver
in it, and the disk as a whole a bound for every driver outside it ("covered"). A backend
scans a region's cells nearest-bound first and stops as soon as it holds k drivers closer
than the next cell's bound: the cost follows k, not the radius. Cells whose bound is past
the radius or past `covered` are never scanned. If the disk is not enough, the next step
scans a wider disk at a coarser resolution, sized from the density seen so far.

Why the bounds hold (tests/unit/test_search_plan.py checks them on random geometry):
- a driver belongs to the cell whose H3 digits prefix its own res-15 cell; such a
  descendant's centre is at most 1.045 circumradii from the cell's centre (measured on
  adversarial descendants; DESCENDANT_SPREAD leaves margin), hence the per-cell bound;
- a driver in a cell outside the disk lies outside the disk's polygons, or inside them
  but within 0.2 circumradii of their edge; to leave the disk a path from the query
  crosses a cell of the next ring, hence `covered`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import h3._cy as h3_cy
import numpy as np

from geoindex._gridknn import disk as _disk
from geoindex._gridknn import plan
from geoindex.cells import (
    average_area_m2,
    average_edge_m,
    max_circumradius_m,
)
from geoindex.errors import InvalidConfig

DESCENDANT_SPREAD = 1.1  # x max circumradius: how far a driver can be from its cell centre
EDGE_SPILL = 0.25  # x max circumradius: how far a driver can be outside its cell polygon
# A scan pays for each cell (one range read) about what it pays for a few drivers, so where
# the drivers searched for are sparse (a rare product, a suburb) cells expected to hold
# fewer than this many of them give way to coarser ones.
MIN_PER_CELL = 1.0


@dataclass(frozen=True, slots=True, eq=False)
class Disk:
    """The geometry of the disk around one origin cell, independent of the query point,
    as `plan` reads it (packed doubles and int64s)."""

    res: int
    size: int  # cells in the disk; the centres after them are the ring just outside it
    xyz: bytes  # centres as unit vectors: the disk's cells, then the outer ring's
    lohi: bytes  # per disk cell: score range (as doubles, exact below 2**53)
    region_index: bytes  # per disk cell: index into `regions`
    regions: tuple[int, ...]


@lru_cache(maxsize=8192)
def disk(origin: int, rings: int, region_res: int) -> Disk:
    # In C (geoindex/_gridknn.c, with H3's own C functions): through h3-py a cell's centre
    # cost over a microsecond of calls and objects, most of a new disk's plan.
    size, xyz, lohi, region_index, regions = _disk(origin, rings, region_res)
    return Disk((origin >> 52) & 0xF, size, xyz, lohi, region_index, regions)


@dataclass(frozen=True, slots=True)
class Step:
    res: int
    rings: int
    covered: float  # no driver outside the scanned cells is closer than this
    # region -> rows (lo, hi, bound on every driver in this cell and the later ones),
    # nearest bound first
    scans: dict[int, np.ndarray]


@dataclass(frozen=True, slots=True)
class SearchConfig:
    region_res: int = 5
    search_res: int = 10
    first_rings: int = 2
    max_rings: int = 12

    def __post_init__(self) -> None:
        if not 0 <= self.region_res <= self.search_res <= 14:
            raise InvalidConfig("need 0 <= region_res <= search_res <= 14")
        if not 1 <= self.first_rings <= self.max_rings:
            raise InvalidConfig("need 1 <= first_rings <= max_rings")


def plan_step(
    lat: float, lng: float, radius_m: float, res: int, rings: int, config: SearchConfig
) -> Step:
    d = disk(int(h3_cy.latlng_to_cell(lat, lng, res)), rings, config.region_res)
    circ = max_circumradius_m(res)
    # In C (geoindex/_gridknn.c), a few microseconds where numpy's calls on arrays of a
    # few dozen cells took tens: great-circle distances to the centres from their chords
    # (differences of unit vectors keep a chord exact to about 1e-16, a nanometre: far
    # inside the metre kept), `covered` from the outer ring, each cell's bound. Cells that
    # cannot hold a hit (past the radius) or that `covered` already vouches for are left
    # out; the rest come nearest-bound first.
    covered, packed, regions = plan(
        d.xyz,
        d.lohi,
        d.region_index,
        d.size,
        lat,
        lng,
        DESCENDANT_SPREAD * circ + 1,
        (1 + EDGE_SPILL) * circ + 1,
        radius_m,
    )
    rows = np.frombuffer(packed).reshape(-1, 3)
    if not len(rows):
        return Step(res, rings, covered, {})
    if len(d.regions) == 1:
        return Step(res, rings, covered, {d.regions[0]: rows})
    which = np.frombuffer(regions, np.int64)
    scans = {region: rows[which == r] for r, region in enumerate(d.regions)}
    return Step(res, rings, covered, {r: v for r, v in scans.items() if len(v)})


def first_step(
    lat: float,
    lng: float,
    radius_m: float,
    config: SearchConfig,
    hint_m: float | None = None,
    k: int | None = None,
) -> Step:
    """The default fine disk, or, when a recent search nearby needed to reach `hint_m` for
    its k-th driver, a disk sized to reach a little further, so sparse areas do not pay
    for a second step (and, with `k`, of cells sized to the density that reach implies)."""
    if hint_m is None:
        return plan_step(lat, lng, radius_m, config.search_res, config.first_rings, config)
    # The reach's area, not its radius, is checked: a reach of a few denormal metres
    # squares to 0.0.
    area = math.pi * hint_m * hint_m
    density = None if k is None or area <= 0 else k / area
    target = min(1.25 * hint_m + 1.0, radius_m * 1.01 + 1.0)
    return sized_step(lat, lng, radius_m, target, config, density)


def sized_step(
    lat: float,
    lng: float,
    radius_m: float,
    target: float,
    config: SearchConfig,
    density: float | None = None,
) -> Step:
    """The finest disk of at most max_rings rings expected to cover `target` metres whose
    cells hold MIN_PER_CELL drivers or more at `density` (per m², if known)."""
    for res in range(config.search_res, config.region_res - 1, -1):
        edge = average_edge_m(res)
        # `covered` is about (1.5 rings - 1.3) edges, less the query's offset (1.1 edges).
        rings = math.ceil((target / edge + 2.4) / 1.5)
        sparse = density is not None and density * average_area_m2(res) < MIN_PER_CELL
        if rings <= config.max_rings and not (sparse and res > config.region_res):
            break
    return plan_step(lat, lng, radius_m, res, max(rings, 1), config)


def is_complete(
    step: Step, k: int, radius_m: float, distances: list[float], cap_m: float | None = None
) -> bool:
    """True when no unscanned driver can enter the top k: `distances` sorted, <= radius,
    found by scans that left out every driver farther than `cap_m` (default: the radius)."""
    if len(distances) >= k and distances[k - 1] < step.covered:
        return True
    return step.covered > radius_m and (cap_m is None or cap_m >= radius_m)


def next_step(
    lat: float,
    lng: float,
    k: int,
    radius_m: float,
    prev: Step,
    distances: list[float],
    config: SearchConfig,
) -> Step:
    """A wider step, sized from the density seen: what it covers at least doubles."""
    covered = max(prev.covered, max_circumradius_m(prev.res))
    found = sum(1 for d in distances if d < covered)
    growth = 1.5 * math.sqrt(k / found) if found else 4.0
    target = min(covered * max(2.0, growth), radius_m * 1.01 + 1.0)
    # None found: fewer than one in the area covered, say half of one.
    density = max(found, 0.5) / (math.pi * covered * covered)
    step = sized_step(lat, lng, radius_m, target, config, density)
    # Where cells are smaller than average the estimate falls short: grow until the step
    # covers clearly more than the last one did, so the search always terminates.
    rings = step.rings
    while step.covered < min(target, 1.5 * covered):
        rings += max(1, rings // 2)
        step = plan_step(lat, lng, radius_m, step.res, rings, config)
    return step


class DensityHints:
    """How far recent searches had to reach, per area and product (a rare product's reach
    says nothing about all drivers'): a cache, never needed for exactness."""

    AREA_RES = 6  # cells of about 36 km2

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._reach: OrderedDict[tuple[int, str | None], float] = OrderedDict()

    def _key(self, lat: float, lng: float, product: str | None) -> tuple[int, str | None]:
        return int(h3_cy.latlng_to_cell(lat, lng, self.AREA_RES)), product

    def get(self, lat: float, lng: float, product: str | None = None) -> float | None:
        return self._reach.get(self._key(lat, lng, product))

    def put(self, lat: float, lng: float, reach_m: float, product: str | None = None) -> None:
        key = self._key(lat, lng, product)
        self._reach[key] = reach_m
        self._reach.move_to_end(key)
        if len(self._reach) > self._size:
            self._reach.popitem(last=False)
