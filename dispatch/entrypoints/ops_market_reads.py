"""Where the ops map reads the market so that its layer covers the whole watched area.

The market's area read (market.area_view, behind GET /v1/market) is bounded to a radius
of MAX_VIEW_RADIUS_M, smaller than the watched area may be. The map therefore makes
several reads within that bound whose disks together hold every market cell of the
watched area, and keeps the cells within the watched radius. The plan depends only on
the area and the market's resolution, so it is made once per feed."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from h3.api import basic_str as h3

from dispatch.domain.geo import EARTH_RADIUS_M, LatLng, haversine_m
from dispatch.service_layer.ops_view import Area

M_PER_DEGREE = 111_320.0
# A cell counts as covered by a read only this far inside the read's radius, so that
# rounding in this plan's numpy distances cannot leave out a cell the read itself
# (math.* haversine) would judge outside.
MARGIN_M = 1.0

Read = tuple[LatLng, float]  # centre, radius_m


def watched_cells(area: Area, res: int) -> list[LatLng]:
    """The centres of the market cells whose centre lies within the watched radius."""
    at = LatLng(area.lat, area.lng)
    rings = int(area.radius_m / (1.3 * h3.average_hexagon_edge_length(res, "m"))) + 2
    origin = h3.latlng_to_cell(area.lat, area.lng, res)
    centres = (LatLng(*h3.cell_to_latlng(c)) for c in h3.grid_disk(origin, rings))
    return [c for c in centres if haversine_m(at, c) <= area.radius_m]


def plan_reads(area: Area, res: int, max_radius_m: float) -> list[Read]:
    """Reads of radius max_radius_m (or one of the area's own radius if it is within the
    bound) that together hold every market cell of the area: greedy set cover over a
    fine triangular lattice of candidate centres (8 reads for 10 km within 5 km)."""
    if area.radius_m <= max_radius_m:
        return [(LatLng(area.lat, area.lng), area.radius_m)]
    cells = watched_cells(area, res)
    candidates = _lattice(area, step_m=max_radius_m / 2, reach_m=area.radius_m + max_radius_m)
    covers = _distances(candidates, cells) <= max_radius_m - MARGIN_M
    uncovered = np.ones(len(cells), np.bool_)
    reads: list[Read] = []
    while uncovered.any():
        gain = (covers & uncovered).sum(axis=1)
        best = int(gain.argmax())
        if gain[best] == 0:  # not met on the lattice (distortion far from the equator)
            best_cell = cells[int(np.flatnonzero(uncovered)[0])]
            reads.append((best_cell, max_radius_m))
            uncovered &= _distances([best_cell], cells)[0] > max_radius_m - MARGIN_M
            continue
        reads.append((candidates[best], max_radius_m))
        uncovered &= ~covers[best]
    return reads


def _lattice(area: Area, step_m: float, reach_m: float) -> list[LatLng]:
    """Points of a triangular lattice around the centre, within reach_m of it (flat
    approximation: the cover is checked against the cells' true distances anyway)."""
    k = int(reach_m / step_m) + 1
    m_per_lng = M_PER_DEGREE * max(0.01, math.cos(math.radians(area.lat)))
    out = []
    for j in range(-k, k + 1):
        for i in range(-k, k + 1):
            x, y = (i + j / 2) * step_m, j * step_m * math.sqrt(3) / 2
            lat = area.lat + y / M_PER_DEGREE
            if math.hypot(x, y) <= reach_m and -90 <= lat <= 90:
                out.append(LatLng(lat, (area.lng + x / m_per_lng + 540) % 360 - 180))
    return out


def _distances(points: list[LatLng], cells: list[LatLng]) -> npt.NDArray[np.float64]:
    """Great-circle distances in metres, points by cells."""
    p_lat = np.radians([p.lat for p in points])[:, None]
    p_lng = np.radians([p.lng for p in points])[:, None]
    c_lat = np.radians([c.lat for c in cells])[None, :]
    c_lng = np.radians([c.lng for c in cells])[None, :]
    a = (
        np.sin((c_lat - p_lat) / 2) ** 2
        + np.cos(p_lat) * np.cos(c_lat) * np.sin((c_lng - p_lng) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))  # type: ignore[no-any-return]
