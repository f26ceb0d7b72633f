"""The k-nearest loop of the Redis backends.

A backend supplies `regions(step)`, a step's per-region scans (geoindex/search.py), and
`scan(regions, cap_m)`: for each region given, its best candidates within `cap_m` (at
most k plus exact ties, each a member as knn.lua returns it: pack("<ddd", lat, lng, ts)
followed by the driver's id), scanning cell by cell and stopping early as
geoindex/lua/knn.lua does. This module merges regions, recomputes every distance here (so
ordering never depends on a backend's floating point), and widens the search until it is
provably complete.

A step that reads several regions (a query near a region border) reads the query's own
region first: once it holds k drivers, the k-th one's distance bounds the answer, and the
other regions scan only cells nearer than that (or are skipped), instead of each looking
for k drivers of its own. A wider step starts from the k-th distance the last one found.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

import numpy as np

# Decoding the members, one per driver, distances (geoindex.cells.haversine_m to the last
# bit), the order and the Neighbors, compiled: in Python they were a third of a search's
# client time.
from geoindex._gridknn import rank
from geoindex.model import Neighbor
from geoindex.search import (
    DensityHints,
    SearchConfig,
    Step,
    first_step,
    is_complete,
    next_step,
)

Candidate = tuple[str, int, float, float]  # driver_id, ts_ms, lat, lng
Scans = Mapping[int, np.ndarray]  # region -> rows (lo, hi, bound) as Step.scans
PlanRegions = Callable[[Step], Scans]
ScanRegions = Callable[[Scans, float], Awaitable[Iterable[bytes]]]
# A driver within 1 mm of the k-th is a tie and must still be found (knn.lua keeps the
# same margin); it also absorbs the difference between Lua's and Python's arithmetic.
TIE_M = 0.001


async def k_nearest(
    lat: float,
    lng: float,
    k: int,
    radius_m: float,
    config: SearchConfig,
    regions: PlanRegions,
    scan: ScanRegions,
    hints: DensityHints,
    product: str | None = None,
) -> list[Neighbor]:
    step = first_step(lat, lng, radius_m, config, hints.get(lat, lng, product), k)
    # No driver farther than `cap` can be among the k nearest: the k-th distance found
    # so far (found drivers are real, so the true k-th is no farther).
    cap = radius_m
    while True:
        members: list[bytes] = []
        hits: list[Neighbor] = []
        scans = regions(step)
        # The query's own region (the one with the nearest first cell), then the rest.
        home = min(scans, key=lambda r: scans[r][0, 2], default=None)
        for phase in ([home], [r for r in scans if r != home]) if home is not None else ():
            wanted = {r: scans[r] for r in phase if scans[r][0, 2] <= cap}
            if not wanted:
                continue
            members += await scan(wanted, cap)
            # A driver crossing a region border may briefly sit in both: rank keeps its
            # newest fix.
            hits = rank(members, lat, lng, radius_m)
            if len(hits) >= k:
                cap = min(cap, hits[k - 1].distance_m + TIE_M)
        distances = [h.distance_m for h in hits]
        if is_complete(step, k, radius_m, distances, cap):
            reach = distances[k - 1] if len(distances) >= k else radius_m
            hints.put(lat, lng, reach, product)
            return hits[:k]
        if len(distances) < k:
            cap = radius_m  # drivers found before have left meanwhile: no bound holds
        step = next_step(lat, lng, k, radius_m, step, distances, config)
