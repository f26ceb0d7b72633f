"""k-nearest search plans: which score ranges to scan, in which stages, and when to stop.

No I/O here. A plan covers the H3 disk of `rings` rings around the query's cell at one
resolution, split into stages (the inner 7 cells, then one ring per stage), each with a
lower bound on the distance of every driver outside the cells scanned so far. A backend
scans stage by stage per region and stops once it holds k drivers closer than the bound:
the cost follows k, not the radius. If the whole disk is not enough, the next step scans a
wider disk at a coarser resolution, chosen from the density seen so far.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from h3.api import basic_int as h3

from geoindex.cells import EARTH_RADIUS_M, SCORE_MASK, max_circumradius_m

Range = tuple[int, int]


@dataclass(frozen=True, slots=True, eq=False)
class Disk:
    """Geometry of the disk around one origin cell, independent of the query point."""

    res: int
    # Centres (radians) of the rings just outside each stage, concatenated; ring_starts
    # marks where each stage's ring begins. A stage's bound is the distance from the query
    # to the nearest of them, less `margin`.
    ring_lat: np.ndarray
    ring_lng: np.ndarray
    ring_starts: np.ndarray
    margin: float
    # region -> per stage, the merged score ranges of that stage's cells in that region.
    ranges: dict[int, tuple[tuple[Range, ...], ...]]
    _blobs: dict[int, bytes] = field(default_factory=dict, compare=False)

    def blob(self, region: int) -> bytes:
        """The region's stages packed as doubles for the Lua scanner: counts, then ranges."""
        blob = self._blobs.get(region)
        if blob is None:
            stages = self.ranges[region]
            flat = [float(len(stages))] + [float(len(s)) for s in stages]
            flat += [float(x) for s in stages for rng in s for x in rng]
            blob = struct.pack(f"<{len(flat)}d", *flat)
            self._blobs[region] = blob
        return blob


def _merge(ranges: list[Range]) -> tuple[Range, ...]:
    merged: list[Range] = []
    for lo, hi in sorted(ranges):
        if merged and merged[-1][1] + 1 >= lo:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _parent(cell: int, res: int) -> int:
    """cell_to_parent by bit arithmetic (the hot path builds thousands of these)."""
    return (cell & ~(0xF << 52)) | (res << 52) | ((1 << (3 * (15 - res))) - 1)


@lru_cache(maxsize=8192)
def disk(origin: int, rings: int, region_res: int) -> Disk:
    res = int(h3.get_resolution(origin))
    # A driver is in the cell whose digits prefix its own, and those descendants can stick
    # out of the cell's polygon by well under half a circumradius; hence 1.5 x, plus 1 m.
    margin = 1.5 * max_circumradius_m(res) + 1.0
    stage_cells: list[list[int]] = [[origin, *h3.grid_ring(origin, 1)]]
    stage_cells += [list(h3.grid_ring(origin, j)) for j in range(2, rings + 1)]
    outer = [list(h3.grid_ring(origin, j + 1)) for j in range(1, rings + 1)]
    centers = np.radians(np.array([h3.cell_to_latlng(c) for ring in outer for c in ring]))
    span = (1 << (3 * (15 - res))) - 1
    per_region: dict[int, list[list[Range]]] = {}
    for s, cells in enumerate(stage_cells):
        for c in cells:
            stages = per_region.setdefault(_parent(c, region_res), [[] for _ in stage_cells])
            high = c & SCORE_MASK
            stages[s].append((high - span, high))
    return Disk(
        res=res,
        ring_lat=centers[:, 0].copy(),
        ring_lng=centers[:, 1].copy(),
        ring_starts=np.cumsum([0] + [len(r) for r in outer[:-1]]),
        margin=margin,
        ranges={r: tuple(_merge(s) for s in stages) for r, stages in per_region.items()},
    )


@dataclass(frozen=True, slots=True)
class Step:
    disk: Disk
    bounds: tuple[float, ...]  # stage bounds for this query point


@dataclass(frozen=True, slots=True)
class SearchConfig:
    region_res: int = 5
    search_res: int = 10
    first_rings: int = 3
    max_rings: int = 12

    def __post_init__(self) -> None:
        if not 0 <= self.region_res <= self.search_res <= 14:
            raise ValueError("need 0 <= region_res <= search_res <= 14")
        if not 1 <= self.first_rings <= self.max_rings:
            raise ValueError("need 1 <= first_rings <= max_rings")


def plan_step(lat: float, lng: float, res: int, rings: int, config: SearchConfig) -> Step:
    d = disk(int(h3.latlng_to_cell(lat, lng, res)), rings, config.region_res)
    p1, l1 = math.radians(lat), math.radians(lng)
    sdp = np.sin((d.ring_lat - p1) / 2)
    sdl = np.sin((d.ring_lng - l1) / 2)
    a = sdp * sdp + math.cos(p1) * np.cos(d.ring_lat) * sdl * sdl
    dist = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
    nearest = np.minimum.reduceat(dist, d.ring_starts)
    return Step(d, tuple(float(x) - d.margin for x in nearest))


def first_step(lat: float, lng: float, config: SearchConfig) -> Step:
    return plan_step(lat, lng, config.search_res, config.first_rings, config)


def is_complete(step: Step, k: int, radius_m: float, distances: list[float]) -> bool:
    """True when no unscanned driver can enter the top k: `distances` sorted, <= radius."""
    covered = step.bounds[-1]
    return covered > radius_m or (len(distances) >= k and distances[k - 1] < covered)


def next_step(
    lat: float,
    lng: float,
    k: int,
    radius_m: float,
    prev: Step,
    distances: list[float],
    config: SearchConfig,
) -> Step:
    """A wider step, sized from the density seen: its covered distance at least doubles."""
    covered = max(prev.bounds[-1], max_circumradius_m(prev.disk.res))
    found = sum(1 for d in distances if d < covered)
    growth = 1.5 * math.sqrt(k / found) if found else 4.0
    target = min(covered * max(2.0, growth), radius_m * 1.01 + 1.0)
    for res in range(prev.disk.res, config.region_res - 1, -1):
        edge = max_circumradius_m(res) / 1.15
        # Stage j's bound is about (1.5 j - 2.8) edges, less the query's offset (1.1 edges).
        rings = math.ceil((target / edge + 3.9) / 1.5)
        if rings <= config.max_rings:
            break
    step = plan_step(lat, lng, res, max(rings, 1), config)
    # Where cells are smaller than average the estimate falls short: grow until the step
    # covers clearly more than the last one did, so the search always terminates.
    while step.bounds[-1] < min(target, 1.5 * covered):
        rings += max(1, rings // 2)
        step = plan_step(lat, lng, res, rings, config)
    return step
