"""The bounded area read behind GeoIndex.within_columns: its limit, and which regions a
disk touches (the order every backend answers in is geoindex.columns.nearest_rows)."""

from __future__ import annotations

from h3.api import basic_int as h3

from geoindex.cells import average_edge_m, haversine_m, max_circumradius_m
from geoindex.errors import InvalidQuery

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
