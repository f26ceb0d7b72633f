"""The ops map's market layer covers the whole watched area, though one market read is
bounded to MAX_VIEW_RADIUS_M: the reads planned hold every cell of the area, each within
the bound, and the layer shows the cells of the area and only those."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from h3.api import basic_str as h3

from dispatch.adapters.memory_market import MemoryMarketStore, MemoryQuoteStore
from dispatch.domain.geo import LatLng, haversine_m
from dispatch.entrypoints.ops_layers import LayerLook
from dispatch.entrypoints.ops_market_reads import plan_reads
from dispatch.service_layer.market import MAX_VIEW_RADIUS_M, Market, MarketConfig, cells_within
from dispatch.service_layer.ops_view import Area
from geoindex import MemoryGeoIndex, Position

NOW = 1_800_000_000_000
RES = MarketConfig().res
M_PER_DEGREE = 111_195.0


def brute_force_cells(area: Area) -> set[str]:
    """Every cell whose centre lies within the area, from a disk of generous size."""
    centre = LatLng(area.lat, area.lng)
    rings = int(area.radius_m / h3.average_hexagon_edge_length(RES, "m")) + 4
    return {
        c
        for c in h3.grid_disk(h3.latlng_to_cell(area.lat, area.lng, RES), rings)
        if haversine_m(centre, LatLng(*h3.cell_to_latlng(c))) <= area.radius_m
    }


@pytest.mark.parametrize(
    "area",
    [
        Area(52.52, 13.405, 10_000),  # the default watched area
        Area(0.0, -78.5, 7_500),
        Area(-33.87, 151.21, 10_000),
        Area(69.65, 18.96, 20_000),  # far north: degrees of longitude are short
        Area(64.9, 179.98, 10_000),  # across the antimeridian
    ],
)
def test_the_planned_reads_hold_every_cell_of_the_area_within_the_read_bound(area: Area) -> None:
    reads = plan_reads(area, RES, MAX_VIEW_RADIUS_M)
    # cells_within is the market read's own cell list; it refuses a radius past its bound.
    covered = {c for at, radius in reads for c in cells_within(MarketConfig(), at, radius)}
    assert brute_force_cells(area) <= covered
    assert all(radius <= MAX_VIEW_RADIUS_M for _, radius in reads)


def test_ten_kilometres_take_a_few_reads_and_an_area_within_the_bound_one() -> None:
    assert len(plan_reads(Area(52.52, 13.405, 10_000), RES, MAX_VIEW_RADIUS_M)) <= 9
    small = Area(52.52, 13.405, 3_000)
    assert plan_reads(small, RES, MAX_VIEW_RADIUS_M) == [(LatLng(52.52, 13.405), 3_000)]


async def test_the_market_layer_shows_cells_out_to_the_watched_radius_and_no_further() -> None:
    area = Area(52.52, 13.405, 10_000)
    index = MemoryGeoIndex(clock=lambda: NOW)
    # One driver due north at each distance: inside the bound of one read, past it, near
    # the watched edge, and beyond it.
    north = {km: area.lat + km * 1_000 / M_PER_DEGREE for km in (2, 7, 9.5, 11.5)}
    await index.upsert([Position(f"d{km}", lat, area.lng, NOW - 10) for km, lat in north.items()])
    market = Market(MemoryMarketStore(lambda: NOW), MemoryQuoteStore(lambda: NOW), MarketConfig())
    deps: Any = SimpleNamespace(
        market=market,
        index=index,
        areas=SimpleNamespace(version=0, all=lambda: []),
        fences=None,
    )
    layers = await LayerLook(deps, area).look(NOW)
    shown = {c.cell: c.supply for c in layers.market}
    # The index counts a driver in the market cell its 0.5 m cell descends from.
    cell = {
        km: h3.cell_to_parent(h3.latlng_to_cell(lat, area.lng, 15), RES)
        for km, lat in north.items()
    }
    assert shown == {cell[2]: 1, cell[7]: 1, cell[9.5]: 1}
