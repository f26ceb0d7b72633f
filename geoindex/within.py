"""The bounded area read behind GeoIndex.within: which regions a disk touches, and the
one ordering (nearest first, ties by id) every backend answers in."""

from __future__ import annotations

from collections.abc import Iterable

from h3.api import basic_int as h3

from geoindex.cells import average_edge_m, haversine_m, max_circumradius_m
from geoindex.errors import InvalidQuery
from geoindex.model import DriverState

MAX_WITHIN = 50_000  # drivers one read may return


def check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_WITHIN:
        raise InvalidQuery(f"limit must be an integer in [1, {MAX_WITHIN}]")
    return limit


def regions_within(lat: float, lng: float, radius_m: float, region_res: int) -> list[int]:
    """Every region that may hold a position within radius_m of (lat, lng).

    A region holds the positions whose res-15 cell descends from it, and H3 descendants
    can stray a little outside their ancestor's hexagon: one edge of margin beyond the
    circumradius covers that with room to spare (the contract tests check the answer
    against brute force across region borders)."""
    edge = average_edge_m(region_res)
    reach = radius_m + max_circumradius_m(region_res) + edge
    rings = int(reach / (1.5 * edge)) + 2
    origin = h3.latlng_to_cell(lat, lng, region_res)
    return [
        int(c)
        for c in h3.grid_disk(origin, rings)
        if haversine_m(lat, lng, *h3.cell_to_latlng(c)) <= reach
    ]


def nearest_first(
    lat: float, lng: float, radius_m: float, limit: int, states: Iterable[DriverState]
) -> list[DriverState]:
    ranked = [
        (d, s.driver_id, s)
        for s in states
        if (d := haversine_m(lat, lng, s.lat, s.lng)) <= radius_m
    ]
    ranked.sort(key=lambda row: (row[0], row[1]))
    return [s for _, _, s in ranked[:limit]]
