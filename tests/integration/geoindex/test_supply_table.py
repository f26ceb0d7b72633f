"""supply_table: every product's supply in one read equals supply_in of each product, on
every backend, on random fleets (busy, stale and multi-product drivers, cells of mixed
resolutions named more than once) and across a split parent; the cells named by hex ids
or given as a uint64 array of H3 ids read the same table."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from h3.api import basic_str as h3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoindex import GeoIndex, InvalidQuery, Position
from geoindex.split import RegionSplitting
from tests.integration.geoindex.conftest import Clock, MakeIndex

pytestmark = [pytest.mark.redis]

_prefixes = itertools.count()
LAT, LNG = 52.52, 13.405
PRODUCTS = ("economy", "comfort", "xl", "wav")


async def per_product(index: GeoIndex, cells: list[str], products: list[str]) -> list[list[int]]:
    """The table as supply_in of one product at a time gives it (each cell named once:
    supply_in adds up the counts of a cell named twice; a table's columns are the cell's)."""
    out = []
    for p in products:
        counts = await index.supply_in(sorted(set(cells)), p)
        out.append([counts.get(c, 0) for c in cells])
    return out


@st.composite
def fleets(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 40))
    drivers = [
        {
            "lat": LAT + draw(st.floats(-0.03, 0.03)),
            "lng": LNG + draw(st.floats(-0.05, 0.05)),
            "products": draw(st.lists(st.sampled_from(PRODUCTS), max_size=3, unique=True)),
            "busy": draw(st.booleans()),
            "age_ms": draw(st.sampled_from([0, 1_000, 10**6])),  # 10**6: stale
        }
        for _ in range(n)
    ]
    res = draw(st.sampled_from([7, 8, 9]))
    disk = sorted(h3.grid_disk(h3.latlng_to_cell(LAT, LNG, res), draw(st.integers(0, 8))))
    cells = draw(st.lists(st.sampled_from(disk), min_size=0, max_size=60))
    # a coarse cell and a drivers' own cells at times, duplicates allowed
    cells += draw(st.lists(st.just(h3.latlng_to_cell(LAT, LNG, 6)), max_size=2))
    products = draw(st.lists(st.sampled_from(PRODUCTS), min_size=1, max_size=4, unique=True))
    return {"drivers": drivers, "cells": cells, "products": products}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(fleet=fleets())
async def test_one_read_equals_each_products_own(
    make_index: MakeIndex, clock: Clock, fleet: dict[str, Any]
) -> None:
    index = make_index(prefix=f"st{next(_prefixes)}")
    now = clock.now_ms
    drivers = fleet["drivers"]
    for i, d in enumerate(drivers):
        if d["products"]:
            await index.set_products(f"d{i}", d["products"])
    await index.upsert(
        [Position(f"d{i}", d["lat"], d["lng"], now - d["age_ms"]) for i, d in enumerate(drivers)]
    )
    for i, d in enumerate(drivers):
        if d["busy"]:
            await index.set_available(f"d{i}", False)
    cells, products = fleet["cells"], fleet["products"]
    table = await index.supply_table(cells, products)
    assert table.dtype == np.int64
    assert table.shape == (len(products), len(cells))
    assert table.tolist() == await per_product(index, cells, products)
    by_ids = await index.supply_table(ids_of(cells), products)
    assert by_ids.dtype == np.int64
    assert by_ids.tolist() == table.tolist()


def ids_of(cells: list[str]) -> npt.NDArray[np.uint64]:
    return np.array([int(c, 16) for c in cells], dtype=np.uint64)


async def test_a_split_parent_counts_each_driver_once(index: GeoIndex, clock: Clock) -> None:
    assert isinstance(index, RegionSplitting)
    await index.split_region(h3.latlng_to_cell(LAT, LNG, 5), 7, settle_s=0.0)
    for i in range(12):
        await index.set_products(f"d{i}", [PRODUCTS[i % 3]])
    t = clock.now_ms
    await index.upsert([Position(f"d{i}", LAT + 0.002 * i, LNG, t) for i in range(12)])
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(LAT, LNG, 6), 1))
    cells += [h3.latlng_to_cell(LAT, LNG, 9), cells[0]]
    table = await index.supply_table(cells, list(PRODUCTS))
    assert table.tolist() == await per_product(index, cells, list(PRODUCTS))
    assert table[:, :7].sum(axis=1).tolist() == [4, 4, 4, 0]  # the disk holds all 12
    assert (await index.supply_table(ids_of(cells), list(PRODUCTS))).tolist() == table.tolist()
    # a cell outside the split parent next to cells inside it
    away = h3.latlng_to_cell(LAT + 0.5, LNG, 9)
    mixed = await index.supply_table(ids_of([away, *cells]), list(PRODUCTS))
    assert mixed[:, 1:].tolist() == table.tolist()
    assert (await index.supply_table(cells, [])).shape == (0, len(cells))
    assert (await index.supply_table([], ["xl"])).shape == (1, 0)


@pytest.mark.parametrize(
    ("cells", "products"),
    [
        (["zz"], ["xl"]),
        ([h3.latlng_to_cell(LAT, LNG, 3)], ["xl"]),  # coarser than a region
        ([h3.latlng_to_cell(LAT, LNG, 9)] * 5_001, ["xl"]),
        ([h3.latlng_to_cell(LAT, LNG, 9)], ["No Such"]),
        ([h3.latlng_to_cell(LAT, LNG, 9)], "xl"),  # a string, not a list of products
        ([h3.latlng_to_cell(LAT, LNG, 9)], [None]),
        (np.array([1, 2], dtype=np.uint64), ["xl"]),  # not H3 cells
        (ids_of([h3.latlng_to_cell(LAT, LNG, 3)]), ["xl"]),
        (ids_of([h3.latlng_to_cell(LAT, LNG, 9)]).astype(np.float64), ["xl"]),
        (ids_of([h3.latlng_to_cell(LAT, LNG, 9)] * 5_001), ["xl"]),
    ],
)
async def test_bad_input_is_refused(index: GeoIndex, cells: Any, products: Any) -> None:
    with pytest.raises(InvalidQuery):
        await index.supply_table(cells, products)
