"""The sweep with `seen` written when a driver enters a region only (region_apply.lua):
a stale score sends the sweep to meta's own time, so no live driver is swept, no dead one
kept, and a tombstone goes when it may (region_expire.lua)."""

from __future__ import annotations

from typing import Any

import pytest

from geoindex import Position, RedisGeoIndex
from geoindex.cells import position_score
from geoindex.redis_index import SWEEP_BATCH
from geoindex.split import Layout

pytestmark = pytest.mark.redis

LAT, LNG, T = 52.52, 13.405, 1_700_000_000_000
TTL = 60_000


def _index(client: Any) -> RedisGeoIndex:
    return RedisGeoIndex(client, ttl_ms=TTL, clock=lambda: T)


def _keys(index: RedisGeoIndex, lat: float, lng: float) -> list[str]:
    return index._region_keys(Layout(5).write_region(position_score(lat, lng)))


async def _ids(index: RedisGeoIndex, lat: float, lng: float) -> list[str]:
    return [n.driver_id for n in await index.nearest(lat, lng, 10, 5_000)]


async def test_a_driver_moving_inside_its_region_is_rescored_not_swept(client: Any) -> None:
    index = _index(client)
    geo, meta, seen = _keys(index, LAT, LNG)
    await index.upsert([Position("d1", LAT, LNG, T)])
    for i in range(1, 4):  # moves inside the region: seen keeps the entry's time
        await index.upsert([Position("d1", LAT + i * 1e-4, LNG, T + i * 10_000)])
    assert await client.zscore(seen, "d1") == T
    # Past its entry, before its last fix: looked at, scored again with its last fix time.
    assert await index.expire(T + 20_000) == []
    assert await client.zscore(seen, "d1") == T + 30_000
    assert await _ids(index, LAT + 3e-4, LNG) == ["d1"]
    # Past its last fix: swept from geo, meta and seen.
    assert await index.expire(T + 30_001) == ["d1"]
    assert [await client.zcard(geo), await client.hlen(meta), await client.zcard(seen)] == [0] * 3


async def test_a_tombstone_stays_its_ttl_then_goes_and_is_not_looked_at_meanwhile(
    client: Any,
) -> None:
    index = _index(client)
    far = LNG + 1.0  # another res-5 region
    _, meta, seen = _keys(index, LAT, LNG)
    await index.upsert([Position("d1", LAT, LNG, T)])
    await index.upsert([Position("d1", LAT, far, T + 10_000)])  # a tombstone at T + 10 s
    assert await client.zscore(seen, "d1") == T  # its entry's time
    assert await index.expire(T + 5_000) == []  # looked at: a tombstone, T + 10 s
    assert await client.hexists(meta, "d1")  # kept, scored for when it may go
    assert await client.zscore(seen, "d1") == T + 10_000 + TTL
    # The driver's own fix (T + 10 s) is past this cutoff, not yet the tombstone.
    assert await index.expire(T + 10_000 + TTL) == ["d1"]
    assert await client.hexists(meta, "d1")
    assert await index.expire(T + 10_001 + TTL) == []  # a tombstone is dropped unreported
    assert not await client.hexists(meta, "d1") and await client.zcard(seen) == 0
    assert await _ids(index, LAT, far) == []


async def test_a_sweep_rescoring_a_full_batch_goes_on_to_the_dead_behind_it(client: Any) -> None:
    index = _index(client)
    _, meta, seen = _keys(index, LAT, LNG)
    live = [f"live{i}" for i in range(SWEEP_BATCH + 1)]
    await index.upsert([Position(d, LAT, LNG + i * 1e-6, T) for i, d in enumerate(live)])
    await index.upsert([Position("dead", LAT, LNG, T + 5_000)])  # behind them in seen
    await index.upsert(
        [Position(d, LAT + 1e-4, LNG + i * 1e-6, T + 20_000) for i, d in enumerate(live)]
    )
    assert await index.expire(T + 10_000) == ["dead"]
    assert await client.hlen(meta) == len(live) and await client.zcard(seen) == len(live)
    assert {s for _, s in await client.zrange(seen, 0, -1, withscores=True)} == {T + 20_000}


async def test_an_entry_of_seen_without_meta_is_dropped(client: Any) -> None:
    index = _index(client)
    await index.upsert([Position("d1", LAT, LNG, T + 50_000)])
    _, meta, seen = _keys(index, LAT, LNG)
    await client.zadd(seen, {"ghost": T})  # as a region call that failed after it leaves
    assert await index.expire(T + 10_000) == []
    assert await client.zscore(seen, "ghost") is None
    assert await client.zscore(seen, "d1") == T + 50_000
