"""The surge round's supply read: in reads one after another, each sized by the drivers
the one before found, so that on Redis no one script holds a node for long."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from dispatch.domain.geo import LatLng
from dispatch.service_layer import surge_job
from dispatch.service_layer.quotes import make_quote
from dispatch.service_layer.surge_fast import cells_to_supply
from dispatch.service_layer.surge_job import surge_round
from tests.unit.dispatch.conftest import PICKUP, World, rider


async def test_a_dense_round_reads_its_supply_in_small_reads_one_at_a_time(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(surge_job, "FIRST_READ_CELLS", 4)
    monkeypatch.setattr(surge_job, "SUPPLY_READ_DRIVERS", 20)
    for i in range(200):  # 200 drivers within 2 km north of the pickup: a few dozen cells
        await world.driver_at(f"d{i}", north_m=10.0 * i)
    for i in range(30):
        await make_quote(world.deps, rider(f"r{i}"), LatLng(*PICKUP), None)
    index = world.deps.index
    read = index.supply_table
    reads: list[tuple[int, int]] = []  # (cells, drivers found) of each read
    in_flight = [0, 0]  # now, most at once

    async def spy(cells: Any, products: Sequence[str]) -> Any:
        in_flight[0] += 1
        in_flight[1] = max(in_flight)
        try:
            table = await read(cells, products)
        finally:
            in_flight[0] -= 1
        reads.append((len(cells), int(np.sum(table))))
        return table

    rounds: list[tuple[Any, Any]] = []
    next_rows = surge_job.next_rows

    def kept(laid: Any, supply: Any, policy: Any) -> Any:
        rounds.append((laid, supply.copy()))
        return next_rows(laid, supply, policy)

    monkeypatch.setattr(index, "supply_table", spy)
    monkeypatch.setattr(surge_job, "next_rows", kept)
    await surge_round(world.deps, "test", {})

    assert len(rounds) == 1 and len(reads) > 2
    assert in_flight[1] == 1  # never two reads at once
    assert reads[0][0] == 4
    total, done = sum(cells for cells, _ in reads), 0
    for (cells, found), (next_cells, _) in zip(reads, reads[1:], strict=False):
        # each read sized by the one before to about 20 drivers (one cell at least; none
        # found: as many cells as a call takes), or the cells left
        done += cells
        size = int(20 * cells / found) if found else surge_job.SUPPLY_CHUNK
        assert next_cells == min(max(1, size), surge_job.SUPPLY_CHUNK, total - done)
    # Together the reads are one read of every cell the round prices, each cell once.
    laid, supply = rounds[0]
    cols = cells_to_supply(laid)
    assert total == len(cols)
    whole = await read(laid.snap.ids[cols], laid.products)
    assert np.array_equal(supply[:, cols], whole)
    assert sum(found for _, found in reads) == np.sum(whole) > 100
