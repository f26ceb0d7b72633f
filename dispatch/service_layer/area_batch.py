"""Point-in-area for a batch of points at once: numpy arrays in and out, every point
answered by the index's compiled lookup (_areaprobe) in one call, as AreaIndex.holding
and holding_near answer one point."""

from __future__ import annotations

import numpy as np

from dispatch.service_layer._areaprobe import cells
from dispatch.service_layer.area_index import KEY_RES, AreaIndex


def cells_of(lats: np.ndarray, lngs: np.ndarray) -> np.ndarray:
    """Each point's KEY_RES cell (AreaIndex.cell_of), as int64."""
    lats = np.ascontiguousarray(lats, dtype=np.float64)
    out = np.empty(len(lats), dtype=np.int64)
    cells(lats, np.ascontiguousarray(lngs, dtype=np.float64), KEY_RES, out)
    return out


def holding_many(
    index: AreaIndex, lats: np.ndarray, lngs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The areas holding each point, as (offsets, areas): point i is held by
    index.areas[k] for k in areas[offsets[i]:offsets[i + 1]]. Points must be valid
    (callers validate first), as for AreaIndex.holding."""
    offsets, areas, _near = _holding(index, cells_of(lats, lngs), lats, lngs, False)
    return offsets, areas


def holding_near_many(
    index: AreaIndex, cells: np.ndarray, lats: np.ndarray, lngs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """holding_many for points already known to be in `cells` (cells_of), and per point
    how far it may move within its cell and keep its areas, as AreaIndex.holding_near
    says (degrees; math.inf: no boundary crosses its cell; 0.0: not known)."""
    return _holding(index, cells, lats, lngs, True)


def _holding(
    index: AreaIndex, cells: np.ndarray, lats: np.ndarray, lngs: np.ndarray, near: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(lats)
    offsets = np.zeros(n + 1, dtype=np.int64)
    reach = np.full(n, np.inf)
    found = index._probe.holding_many(
        np.ascontiguousarray(cells, dtype=np.int64),
        np.ascontiguousarray(lats, dtype=np.float64),
        np.ascontiguousarray(lngs, dtype=np.float64),
        offsets,
        reach if near else None,
    )
    return offsets, np.frombuffer(found, dtype=np.int64), reach
