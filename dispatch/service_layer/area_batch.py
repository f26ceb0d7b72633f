"""Point-in-area for a batch of points at once: the compiled index's tables as numpy
arrays, walked with no Python object per point.

The same answers as AreaIndex.holding, by the same steps: each point's resolution-10 cell
(the one call per point left in Python) searched among the listed resolution-10 cells
(searchsorted; each carries its ancestors' entries), the few points not found there
among the coarser cells, one pass per resolution; each (point, area) pair
a cell lists either inside at once or decided by the parity of boundary crossings
between the point and its cell's centre, computed for every pair and nearby segment in a
few array operations; pairs floating point cannot decide (and cells with no local test)
go to shapely's prepared geometry, vectorised too."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

import numpy as np
import shapely
from h3.api import basic_int as h3

from dispatch.service_layer.area_grid import orient
from dispatch.service_layer.area_index import _ROUNDING, KEY_RES, AreaIndex

_INSIDE = -1  # an entry whose cell lies wholly inside its area
_SHAPELY = -2  # an edge entry with no local test: ask the prepared geometry


@dataclass(frozen=True, slots=True)
class BatchTables:
    fine_keys: np.ndarray  # the listed resolution-10 cells, sorted (int64)
    coarse_keys: np.ndarray  # the coarser ones, sorted; keys number fine, then coarse
    first: np.ndarray  # per key: its first entry
    count: np.ndarray  # per key: how many entries
    area: np.ndarray  # per entry: the area's index in AreaIndex.areas
    local: np.ndarray  # per entry: _INSIDE, _SHAPELY or its local test's number
    cx: np.ndarray  # per local test: the cell centre's lng
    cy: np.ndarray  # ... and lat
    centre_in: np.ndarray  # per local test: is the centre inside
    seg_first: np.ndarray  # per local test: its first segment
    seg_count: np.ndarray
    segs: np.ndarray  # every local test's segments, one row each: ax, ay, bx, by
    geometries: np.ndarray  # per area: its prepared geometry
    coarse_levels: tuple[tuple[int, int], ...]  # (bits to clear, bits to set) each


def batch_tables(index: AreaIndex) -> BatchTables:
    """The lookup tables of `index` as arrays: its resolution-10 cells (each with its
    ancestors' entries, so one search answers most points) first, then its coarser
    cells, searched only for the points the first search misses."""
    fine, coarse = index._fine, index._coarse
    keys = sorted(fine) + sorted(coarse)
    splits = [fine[k] for k in keys[: len(fine)]] + [coarse[k] for k in keys[len(fine) :]]
    count = np.asarray([len(index._combo_places[a]) + len(b) for a, b in splits], dtype=np.int64)
    areas: list[int] = []
    local: list[int] = []
    centres: list[tuple[float, float]] = []
    centre_in: list[bool] = []
    seg_count: list[int] = []
    segs: list[float] = []
    for combo, edges in splits:
        inside = index._combo_places[combo]
        areas.extend(inside)
        local.extend([_INSIDE] * len(inside))
        for i, how in edges:
            areas.append(i)
            if how is None:
                local.append(_SHAPELY)
                continue
            centre_is_in, cx, cy, seg = how[:4]
            local.append(len(centres))
            centres.append((cx, cy))
            centre_in.append(centre_is_in)
            seg_count.append(len(seg) // 4)
            segs.extend(seg)
    counts = np.asarray(seg_count, dtype=np.int64)
    xy = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    return BatchTables(
        fine_keys=np.asarray(keys[: len(fine)], dtype=np.int64),
        coarse_keys=np.asarray(keys[len(fine) :], dtype=np.int64),
        first=np.cumsum(count) - count,
        count=count,
        area=np.asarray(areas, dtype=np.int64),
        local=np.asarray(local, dtype=np.int64),
        cx=np.ascontiguousarray(xy[:, 0]),
        cy=np.ascontiguousarray(xy[:, 1]),
        centre_in=np.asarray(centre_in, dtype=bool),
        seg_first=np.cumsum(counts) - counts,
        seg_count=counts,
        segs=np.asarray(segs, dtype=np.float64).reshape(-1, 4),
        geometries=np.asarray([c.geometry for c in index.areas], dtype=object),
        coarse_levels=index._coarse_levels,
    )


def _search(keys: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which cells are among the sorted keys, and where."""
    if len(keys) == 0:
        return np.zeros(len(cells), dtype=bool), np.zeros(len(cells), dtype=np.int64)
    at = np.minimum(np.searchsorted(keys, cells), len(keys) - 1)
    return keys[at] == cells, at


def _ranges(first: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges [first, first + count): (which range, the index) of every member."""
    which = np.repeat(np.arange(len(count)), count)
    starts = np.cumsum(count) - count
    return which, np.arange(int(count.sum())) - np.repeat(starts, count) + np.repeat(first, count)


def _locally(
    t: BatchTables, lngs: np.ndarray, lats: np.ndarray, pt: np.ndarray, loc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For (point, local test) pairs: (inside, unsure: ask shapely)."""
    pair, s = _ranges(t.seg_first[loc], t.seg_count[loc])
    ax, ay, bx, by = t.segs[s].T
    at, lp = pt[pair], loc[pair]
    x, y, cx, cy = lngs[at], lats[at], t.cx[lp], t.cy[lp]
    lox, hix = np.minimum(x, cx), np.maximum(x, cx)
    loy, hiy = np.minimum(y, cy), np.maximum(y, cy)
    # As local_test: a segment whose box misses the point-centre segment's is skipped.
    near = ~(
        ((ax < lox) & (bx < lox))
        | ((ax > hix) & (bx > hix))
        | ((ay < loy) & (by < loy))
        | ((ay > hiy) & (by > hiy))
    )
    pair, ax, ay, bx, by = pair[near], ax[near], ay[near], bx[near], by[near]
    x, y, cx, cy = x[near], y[near], cx[near], cy[near]
    d1, u1 = orient(ax, ay, bx, by, x, y)
    d2, u2 = orient(ax, ay, bx, by, cx, cy)
    d3, u3 = orient(x, y, cx, cy, ax, ay)
    d4, u4 = orient(x, y, cx, cy, bx, by)
    n = len(pt)
    unsure = np.bincount(pair[u1 | u2 | u3 | u4], minlength=n) > 0
    crossed = np.bincount(pair[(d1 != d2) & (d3 != d4)], minlength=n)
    return t.centre_in[loc] != (crossed & 1).astype(bool), unsure


def cells_of(lats: np.ndarray, lngs: np.ndarray) -> np.ndarray:
    """Each point's KEY_RES cell (AreaIndex.cell_of), as int64."""
    return np.fromiter(
        map(h3.latlng_to_cell, lats.tolist(), lngs.tolist(), repeat(KEY_RES)),
        dtype=np.int64,
        count=len(lats),
    )


def holding_many(
    index: AreaIndex, t: BatchTables, lats: np.ndarray, lngs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The areas holding each point, as (offsets, areas): point i is held by
    index.areas[k] for k in areas[offsets[i]:offsets[i + 1]]. Points must be valid
    (callers validate first), as for AreaIndex.holding."""
    lats = np.ascontiguousarray(lats, dtype=np.float64)
    lngs = np.ascontiguousarray(lngs, dtype=np.float64)
    if len(index) == 0 or len(lats) == 0:
        return np.zeros(len(lats) + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    offsets, areas, _pt, _loc = _holding(index, t, cells_of(lats, lngs), lats, lngs)
    return offsets, areas


def holding_near_many(
    index: AreaIndex, t: BatchTables, cells: np.ndarray, lats: np.ndarray, lngs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """holding_many for points already known to be in `cells` (cells_of), and per point
    how far it may move within its cell and keep its areas, as AreaIndex.holding_near
    says (degrees; math.inf: no boundary crosses its cell; 0.0: not known)."""
    n = len(lats)
    if len(index) == 0 or n == 0:
        empty = np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return *empty, np.full(n, np.inf)
    offsets, areas, pt, loc = _holding(index, t, cells, lats, lngs)
    near = np.full(n, np.inf)
    edge = loc >= 0
    pair, s = _ranges(t.seg_first[loc[edge]], t.seg_count[loc[edge]])
    at = pt[edge][pair]
    ax, ay, bx, by = t.segs[s].T
    x, y = lngs[at], lats[at]
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    f = ((x - ax) * dx + (y - ay) * dy) / np.where(length2 > 0, length2, 1.0)
    f = np.clip(np.where(length2 > 0, f, 0.0), 0.0, 1.0)
    np.minimum.at(near, at, np.hypot(ax + f * dx - x, ay + f * dy - y))
    near[pt[loc == _SHAPELY]] = 0.0
    return offsets, areas, np.maximum(near - _ROUNDING, 0.0)


def _holding(
    index: AreaIndex, t: BatchTables, cells: np.ndarray, lats: np.ndarray, lngs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, areas) as holding_many, and every (point, entry's local) pair looked at."""
    n = len(lats)
    pts, hits = [], []
    found, key = _search(t.fine_keys, cells)
    pts.append(np.nonzero(found)[0])
    hits.append(key[found])
    missed = np.nonzero(~found)[0]
    for clear, bits in t.coarse_levels:  # cells listed, if at all, only coarser
        found, key = _search(t.coarse_keys, (cells[missed] & ~clear) | bits)
        pts.append(missed[found])
        hits.append(key[found] + len(t.fine_keys))
    pt_of_key = np.concatenate(pts)
    key = np.concatenate(hits)
    which, entry = _ranges(t.first[key], t.count[key])
    pt, area, loc = pt_of_key[which], t.area[entry], t.local[entry]
    held = loc == _INSIDE
    edge = loc >= 0
    inside, unsure = _locally(t, lngs, lats, pt[edge], loc[edge])
    held[edge] = inside
    ask = np.zeros(len(pt), dtype=bool)
    ask[edge] = unsure
    ask |= loc == _SHAPELY
    if ask.any():
        held[ask] = shapely.intersects_xy(t.geometries[area[ask]], lngs[pt[ask]], lats[pt[ask]])
    kept, area_kept = pt[held], area[held]
    order = np.argsort(kept, kind="stable")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(kept, minlength=n), out=offsets[1:])
    return offsets, area_kept[order], pt, loc
