"""market.AreaSnapshots on its own: one read per area in flight, shared by the readers
waiting for it; a failed read behind the reads keeps the snapshot, one a reader waits
for is that reader's error; bounded in areas and cells."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dispatch.domain.geo import LatLng
from dispatch.service_layer.market import Area, AreaSnapshots, CellView, Snapshot
from geoindex import BackendUnavailable

HERE = LatLng(52.52, 13.405)
REFRESH_MS = 1_000


class Reads:
    """A read of one area that counts its calls, waits until released if gated, and
    fails while `failing`."""

    def __init__(self, cells: int = 0) -> None:
        self.calls = 0
        self.now = 0
        self.cells = cells
        self.gate: asyncio.Event | None = None
        self.failing = False

    async def __call__(self) -> Snapshot:
        self.calls += 1
        at = self.now
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise BackendUnavailable("redis down")
        cell = CellView("c", HERE, self.calls, 0.0, 0, None, None, 1.0)
        return Snapshot(at, [cell] * self.cells, True)


def area(radius_m: float = 500.0) -> Area:
    return (HERE, radius_m, None)


async def test_readers_of_an_area_nobody_has_read_share_one_read() -> None:
    snaps, read = AreaSnapshots(), Reads()
    read.gate = asyncio.Event()
    readers = [asyncio.ensure_future(snaps.get(area(), 0, REFRESH_MS, read)) for _ in range(5)]
    await asyncio.sleep(0)
    read.gate.set()
    got = await asyncio.gather(*readers)
    assert read.calls == 1 and all(s is got[0] for s in got)


async def test_a_read_behind_the_reads_starts_once_per_interval() -> None:
    snaps, read = AreaSnapshots(max_stale_ms=5_000), Reads()
    first = await snaps.get(area(), 0, REFRESH_MS, read)
    read.gate = asyncio.Event()
    read.now = REFRESH_MS
    for _ in range(5):  # answered at once, one read started
        assert await snaps.get(area(), read.now, REFRESH_MS, read) is first
        await asyncio.sleep(0)  # the read behind starts (and waits at the gate)
    assert read.calls == 2
    read.gate.set()
    await snaps.settled()
    second = await snaps.get(area(), read.now, REFRESH_MS, read)
    assert second.at_ms == REFRESH_MS and read.calls == 2


async def test_a_failed_read_behind_keeps_the_snapshot_until_too_old(
    caplog: pytest.LogCaptureFixture,
) -> None:
    snaps, read = AreaSnapshots(max_stale_ms=5_000), Reads()
    first = await snaps.get(area(), 0, REFRESH_MS, read)
    read.failing = True
    with caplog.at_level(logging.WARNING):
        assert await snaps.get(area(), 4_999, REFRESH_MS, read) is first
        await snaps.settled()
    assert "redis down" in caplog.text
    assert await snaps.get(area(), 4_999, REFRESH_MS, read) is first
    with pytest.raises(BackendUnavailable):
        await snaps.get(area(), 5_000, REFRESH_MS, read)
    read.failing = False
    read.now = 5_001
    assert (await snaps.get(area(), 5_001, REFRESH_MS, read)).at_ms == 5_001


async def test_a_clock_gone_back_reads_afresh() -> None:
    snaps, read = AreaSnapshots(), Reads()
    await snaps.get(area(), 10_000, REFRESH_MS, read)
    read.now = 9_000
    assert (await snaps.get(area(), 9_000, REFRESH_MS, read)).at_ms == 9_000


async def test_a_reader_that_goes_away_leaves_the_read_to_the_others() -> None:
    snaps, read = AreaSnapshots(), Reads()
    read.gate = asyncio.Event()
    gone = asyncio.ensure_future(snaps.get(area(), 0, REFRESH_MS, read))
    stays = asyncio.ensure_future(snaps.get(area(), 0, REFRESH_MS, read))
    await asyncio.sleep(0)
    gone.cancel()
    read.gate.set()
    assert (await stays).at_ms == 0 and read.calls == 1
    assert gone.cancelled()


async def test_areas_and_cells_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AreaSnapshots, "MAX_AREAS", 3)
    snaps, read = AreaSnapshots(), Reads()
    for r in range(5):
        await snaps.get(area(r), 0, REFRESH_MS, read)
    assert len(snaps) == 3
    await snaps.get(area(2), 0, REFRESH_MS, read)  # kept: not read again
    assert read.calls == 5
    await snaps.get(area(0), 0, REFRESH_MS, read)  # dropped: read again
    assert read.calls == 6
    monkeypatch.setattr(AreaSnapshots, "MAX_CELLS", 25)
    snaps, read = AreaSnapshots(), Reads(cells=10)
    for r in range(3):
        await snaps.get(area(r), 0, REFRESH_MS, read)
    assert len(snaps) == 2  # 30 cells > 25: the first area dropped
    await snaps.get(area(0), 0, REFRESH_MS, read)
    assert read.calls == 4
