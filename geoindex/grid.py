"""The embedded backend's k-nearest store: drivers in boxes of a 3-D grid over their unit
vectors, at a few box sizes, each box a small array that numpy reads in one piece.

Why boxes of unit vectors: the straight-line (chord) distance between two points of the
unit sphere grows with their great-circle distance, and a point in a box more than r boxes
(on any axis) from the query's box is at least r box edges away from the query. So the
boxes within r of the query's box hold every driver closer than r edges, with no special
case at the poles, the antimeridian or an H3 pentagon. A search starts at the box size a
recent search nearby suggests (DensityHints) and widens, doubling what it covers, until
the k-th driver is provably the k-th. numpy's chords only preselect (with a margin well
above their rounding); every distance returned is geoindex.cells.haversine_m, so the
order is the other backends' to the last bit.

Each box keeps its drivers' rows (x, y, z, fix time) contiguous, so a search reads a few
small arrays instead of chasing one object per driver; a driver leaves a box by moving
the box's last row into its place, so every write is O(1) per level.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from geoindex.cells import EARTH_RADIUS_M, haversine_m

Candidate = tuple[str, int, float, float]  # driver_id, ts_ms, lat, lng
Hit = tuple[float, Candidate]  # great-circle metres, candidate
Place = tuple[float, float, float, tuple[int, ...]]  # unit vector, box key per level

# Box edges from 125 m (a dense centre's k-th driver is ~80 m away) to 32 km (past it, a
# few boxes cover the largest radius limits.py allows), 4x apart. A level's box indices
# are the finest level's shifted right (both floors: the edges are powers of two apart).
_LEVELS = 5
_SHIFT = 2
BOX_M = tuple(125.0 * 2 ** (_SHIFT * level) for level in range(_LEVELS))
_BOX0 = 125.0 / EARTH_RADIUS_M  # in unit-sphere lengths
_BOX = tuple(_BOX0 * 2 ** (_SHIFT * level) for level in range(_LEVELS))
_TOP = _LEVELS - 1
# A box's key: its three indices (|index| < 2**16 at 125 m) packed into one int, so the
# keys of the boxes around it are the key plus fixed offsets.
_SPAN = 1 << 18
_MID = 1 << 17
# numpy's squared chords come from one dot product (2 - 2 cos), exact to about 1e-15: so
# a chord is known to about 3e-8 near zero (0.2 m) and to a relative 1e-6 beyond a metre.
# Candidates are kept within that margin of the limits, and haversine decides.
_REL = 1e-6
_ABS = 3e-8


def unit_vector(lat: float, lng: float) -> tuple[float, float, float]:
    p, lam = math.radians(lat), math.radians(lng)
    c = math.cos(p)
    return c * math.cos(lam), c * math.sin(lam), math.sin(p)


def _key(x: float, y: float, z: float, level: int) -> int:
    shift = _SHIFT * level
    ix = math.floor(x / _BOX0) >> shift
    iy = math.floor(y / _BOX0) >> shift
    iz = math.floor(z / _BOX0) >> shift
    return ((ix + _MID) * _SPAN + iy + _MID) * _SPAN + iz + _MID


def place(lat: float, lng: float) -> Place:
    x, y, z = unit_vector(lat, lng)
    return x, y, z, tuple(_key(x, y, z, level) for level in range(_LEVELS))


@lru_cache(maxsize=16)
def _block(r: int) -> tuple[int, ...]:
    """Key offsets of every box within r boxes (on each axis) of a box."""
    span = range(-r, r + 1)
    return tuple((dx * _SPAN + dy) * _SPAN + dz for dx in span for dy in span for dz in span)


def _covered_m(chord: float) -> float:
    """No driver outside the scanned boxes is closer than this (1 cm to spare)."""
    if chord >= 2.0:
        return math.inf
    return 2 * EARTH_RADIUS_M * math.asin(chord / 2) - 0.01


def _first_reach(target_m: float) -> tuple[int, int]:
    """(level, r): the fewest, smallest boxes that cover `target_m`; r is 1 or 2, as
    2 boxes of one level read fewer drivers than 1 of the next (4x larger)."""
    for level, edge in enumerate(BOX_M):
        for r in (1, 2):
            if r * edge >= target_m:
                return level, r
    return _TOP, math.ceil(target_m / BOX_M[_TOP])


def _wider(level: int, r: int) -> tuple[int, int]:
    """The next (level, r): each covers twice what the last did."""
    if r == 2 and level < _TOP:
        return level + 1, 1
    return level, r + 1


class _Box:
    __slots__ = ("rows", "cands")

    def __init__(self) -> None:
        self.rows = np.empty((2, 4))  # x, y, z, ts per driver; capacity doubles when full
        self.cands: list[Candidate] = []  # the same drivers, in the same order


class Grid:
    """One searchable set of drivers (every available driver, or one product's), each in
    one box per level."""

    def __init__(self) -> None:
        self._boxes: list[dict[int, _Box]] = [{} for _ in BOX_M]
        # driver -> (its entry, its row in its box of each level; the boxes follow from
        # the entry's position, so no keys are kept per driver)
        self._where: dict[str, tuple[Candidate, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def add(self, cand: Candidate) -> None:
        where = place(cand[2], cand[3])
        row = (where[0], where[1], where[2], float(cand[1]))
        rows: list[int] = []
        for boxes, key in zip(self._boxes, where[3], strict=True):
            box = boxes.get(key)
            if box is None:
                box = boxes[key] = _Box()
            i = len(box.cands)
            if i == len(box.rows):
                box.rows = np.concatenate([box.rows, np.empty_like(box.rows)])
            box.rows[i] = row
            box.cands.append(cand)
            rows.append(i)
        self._where[cand[0]] = (cand, rows)

    def remove(self, driver_id: str) -> None:
        cand, rows = self._where.pop(driver_id)
        keys = place(cand[2], cand[3])[3]
        for level, (boxes, key, i) in enumerate(zip(self._boxes, keys, rows, strict=True)):
            box = boxes[key]
            moved = box.cands.pop()
            if not box.cands:
                del boxes[key]
            elif moved[0] != driver_id:  # the last row fills the hole
                box.cands[i] = moved
                box.rows[i] = box.rows[len(box.cands)]
                self._where[moved[0]][1][level] = i

    def nearest(
        self, lat: float, lng: float, k: int, radius_m: float, min_ts: int, hint_m: float | None
    ) -> tuple[list[Hit], float]:
        """The k nearest fresh drivers within radius_m, sorted by (distance, id), and the
        reach the search needed (the k-th distance, or the radius), for the hints."""
        x, y, z = unit_vector(lat, lng)
        q = np.array((-2 * x, -2 * y, -2 * z))  # a row's dot with it, + 2: the squared chord
        # The radius as a chord (radii are at most 50 km: no wrap-around).
        chord_r = 2 * math.sin(radius_m / (2 * EARTH_RADIUS_M))
        level, r = (0, 1)
        if hint_m is not None:  # reach a little past where a search nearby found its k-th
            level, r = _first_reach(min(1.25 * hint_m + 1, radius_m * 1.01 + 1))
        while True:
            hits = sorted(
                (d, c)
                for c in self._candidates(q, _key(x, y, z, level), level, r, k, chord_r, min_ts)
                if (d := haversine_m(lat, lng, c[2], c[3])) <= radius_m
            )
            covered = _covered_m(r * _BOX[level])
            if covered > radius_m or (len(hits) >= k and hits[k - 1][0] < covered):
                return hits[:k], hits[k - 1][0] if len(hits) >= k else radius_m
            level, r = _wider(level, r)

    def _candidates(
        self, q: np.ndarray, key: int, level: int, r: int, k: int, chord_r: float, min_ts: int
    ) -> list[Candidate]:
        """The fresh drivers of the boxes within r of `key` that are within chord_r and
        among the k nearest by chord (ties and rounding margin included)."""
        boxes = self._boxes[level]
        found = [box for box in map(boxes.get, [key + offset for offset in _block(r)]) if box]
        if not found:
            return []
        rows = np.concatenate([box.rows[: len(box.cands)] for box in found])
        c2 = rows[:, :3] @ q + 2.0  # squared chords
        c2[rows[:, 3] < min_ts] = np.inf  # stale: never a candidate
        limit = chord_r * (1 + _REL) + _ABS
        if len(c2) > k:
            kth = float(np.partition(c2, k - 1)[k - 1])
            limit = min(limit, math.sqrt(max(kth, 0.0)) * (1 + _REL) + _ABS)
        cands = [c for box in found for c in box.cands]
        return [cands[i] for i in np.flatnonzero(c2 <= limit * limit).tolist()]
