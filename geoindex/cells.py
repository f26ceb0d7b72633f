"""H3 arithmetic of the index: positions as res-15 cells held exactly in a sorted-set score.

A res-15 H3 index has 7 base-cell bits and 15 three-bit digits below a constant header:
52 bits, which a double holds exactly. A coarser cell's descendants share its leading
digits, so "every driver in cell c" is one contiguous score range.
"""

from __future__ import annotations

import math
from functools import cache

from h3.api import basic_int as h3

FINE_RES = 15
_SCORE_BITS = 52
SCORE_MASK = (1 << _SCORE_BITS) - 1
_RES15_HEADER = (1 << 59) | (FINE_RES << 52)  # mode 1 (cell), resolution 15

EARTH_RADIUS_M = 6371008.8  # mean radius, as h3 uses for great-circle distances


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance; the index's Lua computes the same formula in the same order."""
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    sdp = math.sin((p2 - p1) / 2)
    sdl = math.sin(math.radians(lng2 - lng1) / 2)
    a = sdp * sdp + math.cos(p1) * math.cos(p2) * sdl * sdl
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def position_score(lat: float, lng: float) -> int:
    """The score of the res-15 cell holding (lat, lng); callers validate lat/lng first."""
    return int(h3.latlng_to_cell(lat, lng, FINE_RES)) & SCORE_MASK


def score_to_cell(score: int) -> int:
    return _RES15_HEADER | score


def score_latlng(score: int) -> tuple[float, float]:
    """The stored (quantised) position: the centre of the res-15 cell, <= 0.65 m away."""
    lat, lng = h3.cell_to_latlng(score_to_cell(score))
    return float(lat), float(lng)


def score_range(cell: int) -> tuple[int, int]:
    """Inclusive score range of every res-15 descendant of `cell`."""
    free_bits = 3 * (FINE_RES - h3.get_resolution(cell))
    high = cell & SCORE_MASK  # unused digits of a coarse cell are all 7 (0b111)
    return high - ((1 << free_bits) - 1), high


def region_of(score: int, region_res: int) -> int:
    """The region (coarse cell) a position belongs to, by H3 digits (not by geometry)."""
    return int(h3.cell_to_parent(score_to_cell(score), region_res))


def cell_hex(cell: int) -> str:
    return str(h3.int_to_str(cell))


def max_circumradius_m(res: int) -> float:
    """An upper bound on any cell's centre-to-vertex distance at `res`.

    Measured over every res-2 cell's centre child: the largest is 1.104 x the average edge
    length at every resolution (cells are largest at icosahedron face centres); 1.15 leaves
    margin. tests/unit/test_cells.py checks the bound on random and pentagon cells.
    """
    return 1.15 * average_edge_m(res)


@cache  # 16 resolutions; h3's call costs more than the plan's arithmetic
def average_edge_m(res: int) -> float:
    return float(h3.average_hexagon_edge_length(res, "m"))


@cache
def average_area_m2(res: int) -> float:
    return float(h3.average_hexagon_area(res, "m^2"))
