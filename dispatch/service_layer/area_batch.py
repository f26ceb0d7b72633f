"""Point-in-area for a batch of points at once: the compiled index's tables as numpy
arrays, walked with no Python object per point.

The same answers as AreaIndex.holding, by the same steps: each point's resolution-10 cell
(the one call per point left in Python), its ancestors looked up in one sorted array of
every listed cell (searchsorted, one pass per resolution in use), each (point, area) pair
a cell lists either inside at once or decided by the parity of boundary crossings
between the point and its cell's centre, computed for every pair and nearby segment in a
few array operations; pairs floating point cannot decide (and cells with no local test)
go to shapely's prepared geometry, vectorised too."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from typing import cast

import numpy as np
import shapely
from h3.api import basic_int as h3

from dispatch.service_layer.area_index import _TOO_CLOSE, KEY_RES, AreaIndex

_INSIDE = -1  # an entry whose cell lies wholly inside its area
_SHAPELY = -2  # an edge entry with no local test: ask the prepared geometry


@dataclass(frozen=True, slots=True)
class BatchTables:
    keys: np.ndarray  # every listed cell, sorted (int64)
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
    levels: tuple[tuple[int, int], ...]  # (bits to clear, bits to set) per resolution


def batch_tables(index: AreaIndex) -> BatchTables:
    table = index._cells
    keys = np.asarray(sorted(table), dtype=np.int64)
    count = np.asarray([len(table[int(k)]) for k in keys], dtype=np.int64)
    first = np.cumsum(count) - count
    areas: list[int] = []
    local: list[int] = []
    centres: list[tuple[float, float]] = []
    centre_in: list[bool] = []
    seg_count: list[int] = []
    segs: list[float] = []
    for k in keys.tolist():
        for i, how in table[k]:
            areas.append(i)
            if how is True:
                local.append(_INSIDE)
            elif how is None:
                local.append(_SHAPELY)
            else:
                inside, cx, cy, seg = cast(tuple[bool, float, float, tuple[float, ...]], how)
                local.append(len(centres))
                centres.append((cx, cy))
                centre_in.append(inside)
                seg_count.append(len(seg) // 4)
                segs.extend(seg)
    counts = np.asarray(seg_count, dtype=np.int64)
    xy = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    return BatchTables(
        keys=keys,
        first=first,
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
        levels=tuple((clear, bits) for _res, clear, bits in index._levels),
    )


def _ranges(first: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges [first, first + count): (which range, the index) of every member."""
    which = np.repeat(np.arange(len(count)), count)
    starts = np.cumsum(count) - count
    return which, np.arange(int(count.sum())) - np.repeat(starts, count) + np.repeat(first, count)


def _orient(
    ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray, cx: np.ndarray, cy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """area_index._orient on arrays: (the sign as det > 0, too close to tell)."""
    left = (bx - ax) * (cy - ay)
    right = (by - ay) * (cx - ax)
    det = left - right
    unsure = (np.abs(det) <= _TOO_CLOSE * (np.abs(left) + np.abs(right))) | (det == 0.0)
    return det > 0, unsure


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
    d1, u1 = _orient(ax, ay, bx, by, x, y)
    d2, u2 = _orient(ax, ay, bx, by, cx, cy)
    d3, u3 = _orient(x, y, cx, cy, ax, ay)
    d4, u4 = _orient(x, y, cx, cy, bx, by)
    n = len(pt)
    unsure = np.bincount(pair[u1 | u2 | u3 | u4], minlength=n) > 0
    crossed = np.bincount(pair[(d1 != d2) & (d3 != d4)], minlength=n)
    return t.centre_in[loc] != (crossed & 1).astype(bool), unsure


def holding_many(
    index: AreaIndex, t: BatchTables, lats: np.ndarray, lngs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The areas holding each point, as (offsets, areas): point i is held by
    index.areas[k] for k in areas[offsets[i]:offsets[i + 1]]. Points must be valid
    (callers validate first), as for AreaIndex.holding."""
    n = len(lats)
    lats = np.ascontiguousarray(lats, dtype=np.float64)
    lngs = np.ascontiguousarray(lngs, dtype=np.float64)
    if not t.levels or n == 0:
        return np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cells = np.fromiter(
        map(h3.latlng_to_cell, lats.tolist(), lngs.tolist(), repeat(KEY_RES)),
        dtype=np.int64,
        count=n,
    )
    pts: list[np.ndarray] = []
    hits: list[np.ndarray] = []
    for clear, bits in t.levels:
        keys = (cells & ~clear) | bits
        at = np.minimum(np.searchsorted(t.keys, keys), len(t.keys) - 1)
        found = t.keys[at] == keys
        pts.append(np.nonzero(found)[0])
        hits.append(at[found])
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
    pt, area = pt[held], area[held]
    order = np.argsort(pt, kind="stable")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pt, minlength=n), out=offsets[1:])
    return offsets, area[order]
