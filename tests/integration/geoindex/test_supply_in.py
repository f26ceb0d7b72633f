"""supply_in: available fresh drivers in cells the caller names, on every backend, the
same counts as the area query gives for those cells."""

from __future__ import annotations

from typing import Any

import pytest
from h3.api import basic_str as h3

from geoindex import GeoIndex, InvalidQuery, Position
from tests.integration.geoindex.conftest import Clock

LAT, LNG = 52.52, 13.405


async def test_counts_per_named_cell_match_the_area_query(index: GeoIndex, clock: Clock) -> None:
    t = clock.now_ms
    await index.upsert([Position(f"d{i}", LAT + 0.0004 * i, LNG, t) for i in range(20)])
    await index.upsert([Position("busy", LAT, LNG, t), Position("old", LAT, LNG, t - 10**6)])
    await index.set_available("busy", False)
    area = await index.supply(LAT, LNG, 3_000, 9)
    named = await index.supply_in(list(h3.grid_disk(h3.latlng_to_cell(LAT, LNG, 9), 12)))
    assert named == area
    assert sum(named.values()) == 20
    coarse = await index.supply_in([h3.latlng_to_cell(LAT, LNG, 6)])
    assert coarse == {h3.latlng_to_cell(LAT, LNG, 6): 20}
    assert await index.supply_in([]) == {}


async def test_a_products_supply_counts_only_the_drivers_serving_it(
    index: GeoIndex, clock: Clock
) -> None:
    t = clock.now_ms
    await index.upsert([Position(f"d{i}", LAT + 0.0004 * i, LNG, t) for i in range(6)])
    await index.set_products("d0", ["xl", "economy"])
    await index.set_products("d1", ["xl"])
    await index.set_products("d2", ["wav"])
    await index.upsert([Position("busy", LAT, LNG, t)])
    await index.set_products("busy", ["xl"])
    await index.set_available("busy", False)
    cells = list(h3.grid_disk(h3.latlng_to_cell(LAT, LNG, 9), 12))
    xl = await index.supply_in(cells, "xl")
    assert sum(xl.values()) == 2
    assert sum((await index.supply_in(cells, "wav")).values()) == 1
    assert await index.supply_in(cells, "comfort") == {}
    assert sum((await index.supply_in(cells)).values()) == 6  # every product
    with pytest.raises(InvalidQuery):
        await index.supply_in(cells, "No Such")


@pytest.mark.parametrize(
    "cells",
    [
        ["zz"],
        ["8f1f1d4898000000"],  # 16 digits
        ["881f1d4895ffff0"],  # hex, but not a valid cell
        [h3.latlng_to_cell(LAT, LNG, 3)],  # coarser than a region
        [h3.latlng_to_cell(LAT, LNG, 9)] * 5_001,
        "881f1d4895fffff",  # a string, not a list of them
        [42],
    ],
)
async def test_bad_cells_are_refused(index: GeoIndex, cells: Any) -> None:
    with pytest.raises(InvalidQuery):
        await index.supply_in(cells)
