"""Boundary cells answered mostly without a polygon test: a raster of each cell.

A cell the boundary may cross gets a GRID x GRID raster over the bounding box of its
grown outline. A square whose centre is further from every boundary segment listed for
the cell than the square's half diagonal holds no boundary point inside the grown
outline (every boundary point there lies on a listed segment), so all its points in the
cell share one answer: that of the square's point nearest the cell's centre, taken by
the cell's local test when that point lies in the cell's hexagon. Such a square is
stored as IN or OUT; every other square (the boundary near it, or no point of it known
to be in the hexagon, or floating point too close to call) as EXACT: the local test."""

from __future__ import annotations

import numpy as np

GRID = 16  # squares a side; two bits a square: 64 bytes a boundary cell
OUT, IN, EXACT = 0, 1, 2
_MARGIN = 1e-9  # degrees (0.1 mm) added to a square's reach: far past floats' errors
_TOO_CLOSE = 1e-12  # relative: an orientation this near 0 is not trusted to floats
_BLOCK = 256  # cells a step


def orient(
    ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray, cx: np.ndarray, cy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Which side of a->b each c is, on arrays: (det > 0, too close to tell)."""
    left = (bx - ax) * (cy - ay)
    right = (by - ay) * (cx - ax)
    det = left - right
    unsure = (np.abs(det) <= _TOO_CLOSE * (np.abs(left) + np.abs(right))) | (det == 0.0)
    return det > 0, unsure


def _in_convex(
    rings: list[list[tuple[float, float]]], px: np.ndarray, py: np.ndarray
) -> np.ndarray:
    """(cells, squares): each point strictly inside its cell's ring (convex, either
    winding); the rings padded to one length with their closing vertex repeated (edges
    of length 0, which every point passes)."""
    k = max(len(r) for r in rings) + 1
    xy = np.asarray([[*r, *[r[0]] * (k - len(r))] for r in rings])  # (cells, k, 2)
    ax, ay = xy[:, :-1, 0][:, :, None], xy[:, :-1, 1][:, :, None]
    ex, ey = np.diff(xy[:, :, 0], axis=1)[:, :, None], np.diff(xy[:, :, 1], axis=1)[:, :, None]
    cross = ex * (py[:, None, :] - ay) - ey * (px[:, None, :] - ax)  # (cells, edges, squares)
    area2 = (xy[:, :-1, 0] * xy[:, 1:, 1] - xy[:, 1:, 0] * xy[:, :-1, 1]).sum(axis=1)
    side = np.sign(area2)[:, None, None]
    flat = ((ex == 0) & (ey == 0)) | (cross * side > 0)
    return np.asarray(flat.all(axis=1))


def cell_grids(
    bounds: np.ndarray,
    rings: list[list[tuple[float, float]]],
    centres: np.ndarray,
    centre_in: np.ndarray,
    segs: list[np.ndarray],
) -> list[tuple[float, float, float, float, bytes]]:
    """Per cell (its grown outline's bounds minx, miny, maxx, maxy; its hexagon as
    (lng, lat) vertices; its centre as lng, lat and whether the area holds it; its listed
    segments as rows ax, ay, bx, by): (x0, y0, squares per degree of lng, of lat, the
    raster: GRID rows of GRID squares, row by latitude, four squares a byte (square)).
    In blocks of cells, so a large area's arrays stay small."""
    out: list[tuple[float, float, float, float, bytes]] = []
    for a in range(0, len(rings), _BLOCK):
        b = a + _BLOCK
        codes = _codes(bounds[a:b], rings[a:b], centres[a:b], centre_in[a:b], segs[a:b])
        for i, (x0, y0, x1, y1) in enumerate(bounds[a:b].tolist()):
            out.append((x0, y0, GRID / (x1 - x0), GRID / (y1 - y0), codes[i].tobytes()))
    return out


def _codes(
    bounds: np.ndarray,
    rings: list[list[tuple[float, float]]],
    centres: np.ndarray,
    centre_in: np.ndarray,
    segs: list[np.ndarray],
) -> np.ndarray:
    n = len(rings)
    x0, y0, x1, y1 = (bounds[:, j] for j in range(4))
    w, h = (x1 - x0) / GRID, (y1 - y0) / GRID
    steps = np.arange(GRID) + 0.5
    cols = x0[:, None] + steps[None, :] * w[:, None]
    rows = y0[:, None] + steps[None, :] * h[:, None]
    qx = np.broadcast_to(cols[:, None, :], (n, GRID, GRID)).reshape(n, -1)
    qy = np.broadcast_to(rows[:, :, None], (n, GRID, GRID)).reshape(n, -1)
    cx, cy = centres[:, 0][:, None], centres[:, 1][:, None]
    # The square's point nearest the centre: the answer there is the square's.
    px = np.clip(cx, qx - w[:, None] / 2, qx + w[:, None] / 2)
    py = np.clip(cy, qy - h[:, None] / 2, qy + h[:, None] / 2)
    exact = ~_in_convex(rings, px, py)
    parity = np.zeros((n, GRID * GRID), dtype=np.int64)
    owner = np.repeat(np.arange(n), [len(s) for s in segs])
    if len(owner):
        s = np.vstack(segs)
        ax, ay, bx, by = (s[:, j][:, None] for j in range(4))
        sx, sy, tx, ty = qx[owner], qy[owner], px[owner], py[owner]
        ox, oy = cx[owner], cy[owner]
        # Squares within reach of a segment: the boundary may pass through them.
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = ((sx - ax) * dx + (sy - ay) * dy) / np.where(length2 > 0, length2, 1.0)
        t = np.clip(np.where(length2 > 0, t, 0.0), 0.0, 1.0)
        reach = (0.5 * np.hypot(w, h) + _MARGIN)[owner][:, None]
        near = np.hypot(ax + t * dx - sx, ay + t * dy - sy) <= reach
        # Crossings of the segment from that point to the centre, as the lookup counts
        # them (local_test in _areaprobe.c).
        d1, u1 = orient(ax, ay, bx, by, tx, ty)
        d2, u2 = orient(ax, ay, bx, by, ox, oy)
        d3, u3 = orient(tx, ty, ox, oy, ax, ay)
        d4, u4 = orient(tx, ty, ox, oy, bx, by)
        counts = np.asarray([len(s) for s in segs])
        some = counts > 0
        starts = (np.cumsum(counts) - counts)[some]  # each cell's segments: one run
        doubt = near | u1 | u2 | u3 | u4
        exact[some] |= np.logical_or.reduceat(doubt, starts, axis=0)
        parity[some] = np.add.reduceat(((d1 != d2) & (d3 != d4)).astype(np.int64), starts, axis=0)
    inside = centre_in[:, None] != (parity & 1).astype(bool)
    codes = np.where(exact, EXACT, np.where(inside, IN, OUT)).astype(np.uint8)
    four = codes.reshape(n, -1, 4)  # square k in bits 2 (k % 4) of byte k // 4 (square)
    return four[:, :, 0] | four[:, :, 1] << 2 | four[:, :, 2] << 4 | four[:, :, 3] << 6


def square(raster: bytes, k: int) -> int:
    """The code of square k (row * GRID + column) in a packed raster."""
    return (raster[k >> 2] >> ((k & 3) << 1)) & 3
