"""The k-nearest loop of the Redis backends.

A backend supplies `scan(step)`: for every region of the step's disk, the region's best
candidates (at most k plus exact ties, each (driver_id, ts_ms, lat, lng)), scanning cell
by cell and stopping early as geoindex/search.py describes (geoindex/lua/knn.lua). This
module merges regions, recomputes every distance here (so ordering never depends on a
backend's floating point), and widens the search until it is provably complete.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from geoindex.cells import haversine_m
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
ScanStep = Callable[[Step], Awaitable[Iterable[Candidate]]]


async def k_nearest(
    lat: float,
    lng: float,
    k: int,
    radius_m: float,
    config: SearchConfig,
    scan: ScanStep,
    hints: DensityHints,
    product: str | None = None,
) -> list[Neighbor]:
    step = first_step(lat, lng, radius_m, config, hints.get(lat, lng, product), k)
    while True:
        latest: dict[str, Candidate] = {}
        for cand in await scan(step):
            # A driver crossing a region border may briefly sit in both: keep the newest fix.
            seen = latest.get(cand[0])
            if seen is None or cand[1] > seen[1]:
                latest[cand[0]] = cand
        hits = sorted(
            (d, c) for c in latest.values() if (d := haversine_m(lat, lng, c[2], c[3])) <= radius_m
        )
        distances = [d for d, _ in hits]
        if is_complete(step, k, radius_m, distances):
            reach = distances[k - 1] if len(distances) >= k else radius_m
            hints.put(lat, lng, reach, product)
            return [Neighbor(c[0], d, c[2], c[3], c[1]) for d, c in hits[:k]]
        step = next_step(lat, lng, k, radius_m, step, distances, config)
