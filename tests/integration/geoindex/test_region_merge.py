"""Region writes of concurrent callers leave together, one call per region: exact all the
same (region_apply.lua orders a region's changes by version however they arrive), and a
failed call fails every caller whose changes it carried."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from geoindex import Position, RedisGeoIndex, SearchConfig
from geoindex.cells import position_score
from geoindex.errors import BackendUnavailable
from geoindex.split import Layout

pytestmark = pytest.mark.redis

LAT, LNG, T = 52.52, 13.405, 1_700_000_000_000


def _region(p: Position) -> int:
    return Layout(7).write_region(position_score(p.lat, p.lng))


def _index(client: Any) -> RedisGeoIndex:
    # Res-7 regions (about 1.2 km across): the drivers below cross many borders.
    config = SearchConfig(region_res=7)
    return RedisGeoIndex(client, ttl_ms=600_000, clock=lambda: T + 10_000, config=config)


def _count_region_runs(index: RedisGeoIndex, callers: int) -> list[int]:
    """Wraps the index's script runner: the region_apply.lua calls of each run. The first
    run is held until every caller's driver writes are back (on a quiet Redis a region
    call is over before the next caller's driver reply is read; under load they overlap)."""
    runs: list[int] = []
    inner = index._scripts.run
    drivers_back = 0
    all_back = asyncio.Event()

    async def run(calls: Any) -> list[Any]:
        nonlocal drivers_back
        if calls and calls[0][0].name == "region_apply":
            runs.append(len(calls))
            if len(runs) == 1:
                await all_back.wait()
                await asyncio.sleep(0.01)  # for the last ones to queue their regions
            return await inner(calls)
        replies = await inner(calls)
        if calls and calls[0][0].name == "driver_upsert":
            drivers_back += 1
            if drivers_back == callers:
                all_back.set()
        return replies

    index._scripts.run = run  # type: ignore[method-assign]
    return runs


async def test_concurrent_writes_share_region_calls_and_end_exact(client: Any) -> None:
    index = _index(client)
    await index.upsert([Position("warm", 0.0, 0.0, T)])  # scripts loaded, layout read
    runs = _count_region_runs(index, 40)
    rng = random.Random(11)
    last: dict[str, tuple[float, float]] = {}
    batches = []
    # 40 callers at once, each moving 5 of 30 drivers around a 6 km square; a driver's
    # fixes in several callers, each newer than the last.
    for n in range(40):
        batch = []
        for d in rng.sample(range(30), 5):
            lat, lng = LAT + rng.uniform(-0.03, 0.03), LNG + rng.uniform(-0.05, 0.05)
            batch.append(Position(f"d{d}", lat, lng, T + n))
            last[f"d{d}"] = (lat, lng)
        batches.append(batch)
    await asyncio.gather(*(index.upsert(b) for b in batches))
    # The first caller's regions alone, then every other caller's in one round: a
    # region's changes from all of them in one call.
    assert len(runs) == 2
    assert runs[1] < sum(len({_region(p) for p in b}) for b in batches[1:])
    for driver_id, (lat, lng) in last.items():
        state = await index.get(driver_id)
        assert state is not None and (state.lat, state.lng) == pytest.approx((lat, lng), abs=1e-5)
    # Every driver once, at its newest fix, in the whole area (every region read).
    found = await index.within(LAT, LNG, 20_000, 1_000)
    assert sorted(s.driver_id for s in found) == sorted(last)
    for s in found:
        assert (s.lat, s.lng) == pytest.approx(last[s.driver_id], abs=1e-5)
    for driver_id, (lat, lng) in last.items():
        nearest = await index.nearest(lat, lng, 1, 50)
        assert [h.driver_id for h in nearest] == [driver_id]


async def test_a_failed_merged_call_fails_every_caller_it_carried(client: Any) -> None:
    index = _index(client)
    await index.upsert([Position("warm", LAT, LNG, T)])  # scripts loaded, layout read
    inner = index._scripts.run
    started = asyncio.Event()
    release = asyncio.Event()

    async def run(calls: Any) -> list[Any]:
        if calls and calls[0][0].name == "region_apply":
            if not started.is_set():  # the first caller's call: hold it in flight
                started.set()
                await release.wait()
                return await inner(calls)
            raise BackendUnavailable("redis unavailable: gone")
        return await inner(calls)

    index._scripts.run = run  # type: ignore[method-assign]
    first = asyncio.create_task(index.upsert([Position("a", LAT, LNG, T + 1)]))
    await started.wait()
    # These two arrive while the first is in flight: they leave together after it.
    others = [
        asyncio.create_task(index.upsert([Position(d, LAT + 0.01, LNG, T + 1)])) for d in "bc"
    ]
    await asyncio.sleep(0.05)
    release.set()
    assert (await first)[0].value == "accepted"
    for task in others:
        with pytest.raises(BackendUnavailable):
            await task
    # The next caller goes on its own again.
    index._scripts.run = inner  # type: ignore[method-assign]
    await index.upsert([Position("d", LAT, LNG, T + 2)])
    assert {h.driver_id for h in await index.nearest(LAT, LNG, 5, 10)} == {"warm", "a", "d"}


async def test_a_cancelled_sender_cancels_every_caller_waiting_on_it(client: Any) -> None:
    index = _index(client)
    await index.upsert([Position("warm", LAT, LNG, T)])
    inner = index._scripts.run
    started = asyncio.Event()

    async def run(calls: Any) -> list[Any]:
        if calls and calls[0][0].name == "region_apply":
            started.set()
            await asyncio.Event().wait()  # never answers
        return await inner(calls)

    index._scripts.run = run  # type: ignore[method-assign]
    first = asyncio.create_task(index.upsert([Position("a", LAT, LNG, T + 1)]))
    await started.wait()
    later = asyncio.create_task(index.upsert([Position("b", LAT, LNG, T + 1)]))
    while not index._region_queue:  # b's changes wait behind a's call
        await asyncio.sleep(0.001)
    assert index._region_sender is not None
    index._region_sender.cancel()
    done, pending = await asyncio.wait([first, later], timeout=5)
    assert not pending  # none left waiting for a sender that is gone
    assert all(task.cancelled() for task in done)
    assert index._region_sender is None and not index._region_queue
