"""The columnar area read behind GeoIndex.within_columns: the drivers of an area as numpy
columns, nearest first by haversine_m and ties by id, without an object, a Python
haversine or a sort key per driver. GeoIndex.within is these rows as DriverStates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geoindex.cells import EARTH_RADIUS_M, haversine_m
from geoindex.model import DriverState

Floats = npt.NDArray[np.float64]
Rows = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class Columns:
    """Drivers as columns: row i of every column is one driver, nearest first."""

    ids: list[str]
    lat: Floats  # the stored (quantised) position, degrees
    lng: Floats
    ts_ms: npt.NDArray[np.int64]  # last accepted fix
    available: npt.NDArray[np.bool_]
    products: list[tuple[str, ...]]  # what each serves (sorted), as DriverState has it

    def __len__(self) -> int:
        return len(self.ids)

    def states(self) -> list[DriverState]:
        """The same rows as DriverStates (seq None, as within gives them)."""
        return [
            DriverState(i, lat, lng, ts, None, available, products)
            for i, lat, lng, ts, available, products in zip(
                self.ids,
                self.lat.tolist(),
                self.lng.tolist(),
                self.ts_ms.tolist(),
                self.available.tolist(),
                self.products,
                strict=True,
            )
        ]


def haversine_np(lat: float, lng: float, lats: Floats, lngs: Floats) -> Floats:
    """cells.haversine_m over arrays, term by term in the same order. numpy's arcsin may
    differ from libm's asin in the last bit, hence the exact tie-break in nearest_rows."""
    p1 = math.radians(lat)
    p2 = np.radians(lats)
    sdp = np.sin((p2 - p1) / 2)
    sdl = np.sin(np.radians(lngs - lng) / 2)
    a = sdp * sdp + math.cos(p1) * np.cos(p2) * sdl * sdl
    d: Floats = 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(a)))
    return d


def nearest_rows(
    lat: float,
    lng: float,
    radius_m: float,
    limit: int,
    ids: Sequence[str],
    lats: Floats,
    lngs: Floats,
) -> Rows:
    """The rows within radius_m of (lat, lng), nearest first, ties by id, at most `limit`:
    exactly the drivers and order of ranking them by (haversine_m, id) in Python.

    The order comes from numpy's distances, except where they could disagree with
    haversine_m's: two distances closer than `tol` (a tie, or one the last bit could
    swap) or one within `tol` of the radius. Those few rows are ranked again by the exact
    distance and the id, in Python; every other pair is farther apart than any rounding."""
    d = haversine_np(lat, lng, lats, lngs)
    tol = 1e-9 + 1e-12 * radius_m  # ~1000x the last-bit error of a distance of 50 km
    rows = np.flatnonzero(d <= radius_m + tol)
    rows = rows[np.argsort(d[rows], kind="stable")]
    ds = d[rows]
    apart = np.diff(ds) > tol
    group = np.concatenate(([0], np.cumsum(apart)))  # runs of rows closer than tol
    unsure = np.zeros(len(rows), np.bool_)
    unsure[:-1] |= ~apart
    unsure[1:] |= ~apart
    unsure |= ds >= radius_m - tol
    if not unsure.any():
        return rows[:limit]
    keep = np.ones(len(rows), np.bool_)
    for g in np.unique(group[unsure]).tolist():
        lo, hi = np.searchsorted(group, g, "left"), np.searchsorted(group, g, "right")
        exact = sorted(
            (haversine_m(lat, lng, float(lats[r]), float(lngs[r])), ids[r], r)
            for r in rows[lo:hi].tolist()
        )
        rows[lo:hi] = [r for _, _, r in exact]
        keep[lo:hi] = [dist <= radius_m for dist, _, _ in exact]
    return rows[keep][:limit]
