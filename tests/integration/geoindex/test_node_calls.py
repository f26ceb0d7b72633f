"""A write's script calls go one per node: the drivers a node holds in one driver_upsert.lua
call, the regions it holds in one region_apply.lua call, whatever their slots; exact all the
same. A node call that cannot run whole (a slot in migration whose keys have left) leaves
each driver and region it carries written whole or not at all, and they go again one a
call, by the path that follows the migration's redirections."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster as AsyncCluster
from redis.crc import key_slot

from geoindex import Position, RedisGeoIndex, SearchConfig
from geoindex.cells import position_score
from geoindex.redis_edge import NOT_RUN
from geoindex.redis_pipeline import NodeKeys
from geoindex.split import Layout
from loadtest.redis_procs import RedisCluster

pytestmark = pytest.mark.redis

LAT, LNG, T = 52.52, 13.405, 1_700_000_000_000
CONFIG = SearchConfig(region_res=7)  # regions about 1.2 km across: many in a few km


def _index(client: Any) -> RedisGeoIndex:
    return RedisGeoIndex(client, ttl_ms=600_000, clock=lambda: T + 10_000, config=CONFIG)


def _spy(index: RedisGeoIndex) -> list[tuple[str, list[Any], list[Any]]]:
    """Every script call the index runs: (script, keys, reply)."""
    seen: list[tuple[str, list[Any], list[Any]]] = []
    inner = index._scripts.run

    async def run(calls: Any) -> list[Any]:
        replies = await inner(calls)
        seen.extend((s.name, keys, r) for (s, keys, _), r in zip(calls, replies, strict=True))
        return replies

    index._scripts.run = run  # type: ignore[method-assign]
    return seen


def _city(n: int, rng: random.Random) -> list[Position]:
    return [
        Position(f"d{i}", LAT + rng.uniform(-0.03, 0.03), LNG + rng.uniform(-0.05, 0.05), T)
        for i in range(n)
    ]


def _geo_key(index: RedisGeoIndex, p: Position) -> str:
    return index._region_keys(Layout(7).write_region(position_score(p.lat, p.lng)))[0]


async def test_a_batch_goes_one_call_a_node_for_drivers_and_regions_exact(client: Any) -> None:
    index = _index(client)
    calls = _spy(index)
    drivers = _city(60, random.Random(3))
    await index.upsert(drivers)
    node_calls = [(name, keys) for name, keys, _ in calls if isinstance(keys, NodeKeys)]
    masters = 1 if isinstance(client, Redis) else 3
    for script in ("driver_upsert", "region_apply"):
        mine = [keys for name, keys in node_calls if name == script]
        assert len(mine) == masters  # 60 drivers, dozens of regions: several on each node
        assert all(len({key_slot(k.encode()) for k in keys}) > 1 for keys in mine)
    # Every driver where the batch put it: found at its own place, in its own region.
    for p in drivers:
        found = await index.nearest(p.lat, p.lng, 1, 50.0)
        assert [n.driver_id for n in found] == [p.driver_id]
    moved = [Position(p.driver_id, p.lat + 0.004, p.lng, T + 1) for p in drivers]
    await index.upsert(moved)  # many cross a border: a tombstone in the old region
    for p, q in zip(drivers, moved, strict=True):
        assert [n.driver_id for n in await index.nearest(q.lat, q.lng, 1, 50.0)] == [q.driver_id]
        assert p.driver_id not in {n.driver_id for n in await index.nearest(p.lat, p.lng, 3, 1.0)}


async def _node_id(port: int) -> str:
    async with Redis(port=port) as r:
        return (await r.execute_command("CLUSTER", "MYID")).decode()  # type: ignore[no-any-return]


async def _set_slot(ports: list[int], slot: int, *how: Any) -> None:
    for port in ports:
        async with Redis(port=port) as r:
            await r.execute_command("CLUSTER", "SETSLOT", slot, *how)


async def _migrate(source: int, target: int, keys: list[Any]) -> None:
    async with Redis(port=source) as r:
        await r.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)


@contextlib.asynccontextmanager
async def _slot_moving(
    ports: list[int], source: int, slot: int, first: list[Any]
) -> AsyncIterator[asyncio.Task[None]]:
    """The slot migrating from `source` to another master, `first` of its keys already
    there; yields the task that moves the rest 50 ms after its start and gives the slot to
    the target (within redis-py's TRYAGAIN retries). Afterwards the slot is back on
    `source`, empty, where the other tests expect it."""
    target = next(p for p in ports if p != source)
    src_id, dst_id = await _node_id(source), await _node_id(target)
    await _set_slot([target], slot, "IMPORTING", src_id)
    await _set_slot([source], slot, "MIGRATING", dst_id)
    await _migrate(source, target, first)

    async def finish() -> None:
        await asyncio.sleep(0.05)
        async with Redis(port=source) as r:
            keys = await r.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
        await _migrate(source, target, keys)
        await _set_slot(ports, slot, "NODE", dst_id)

    done = asyncio.create_task(finish())
    try:
        yield done
    finally:
        await asyncio.gather(done, return_exceptions=True)
        async with Redis(port=target) as r:
            while keys := await r.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                await r.delete(*keys)
        await _set_slot(ports, slot, "NODE", src_id)


async def test_a_slot_in_migration_sends_the_nodes_regions_again_one_call_each_exact(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    client = AsyncCluster.from_url(redis_cluster_url)
    index = _index(client)
    try:
        drivers = _city(60, random.Random(5))
        await index.upsert(drivers)
        # A region of the batch whose slot starts to migrate: its seen set has left, its
        # geo and meta not yet; the same node holds other regions of the batch.
        key = _geo_key(index, drivers[0])
        slot, source = key_slot(key.encode()), client.get_node_from_key(key)
        assert sum(client.get_node_from_key(_geo_key(index, p)) == source for p in drivers) > 1
        ports = [n.port for n in redis_cluster.masters()]
        region_keys = index._region_keys(Layout(7).write_region(position_score(
            drivers[0].lat, drivers[0].lng)))  # fmt: skip
        calls = _spy(index)
        moved = [Position(p.driver_id, p.lat + 1e-4, p.lng, T + 1) for p in drivers]
        async with _slot_moving(ports, source.port, slot, [region_keys[2]]) as done:
            await index.upsert(moved)
            await done
            failed = [keys for name, keys, reply in calls if reply is NOT_RUN]
            assert len(failed) == 1 and isinstance(failed[0], NodeKeys) and key in failed[0]
            # Its regions sent again one a call (region A's through redis-py, which waited
            # out the migration's TRYAGAIN and followed its MOVED).
            again = [k[0] for name, k, _ in calls if name == "region_apply" and type(k) is list]
            assert set(failed[0]) <= set(again)
            for p in moved:
                found = await index.nearest(p.lat, p.lng, 1, 5.0)
                assert [n.driver_id for n in found] == [p.driver_id]
    finally:
        await client.aclose()


async def test_a_node_call_failing_midway_leaves_each_region_whole_and_its_retry_exact(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    """Regions of one change each (no EXISTS before the first write): the call writes the
    regions before the one whose geo key has left, whole, and that one not at all; sent
    again one a call, the written one changes nothing and the other is written."""
    client = AsyncCluster.from_url(redis_cluster_url)
    index = _index(client)
    try:
        await client.initialize()
        # Two drivers alone in their regions, the regions on one node in two slots.
        by_node: dict[Any, list[Position]] = {}
        for p in _city(60, random.Random(9)):
            by_node.setdefault(client.get_node_from_key(_geo_key(index, p)), []).append(p)
        source, pool = next((n, ps) for n, ps in by_node.items() if len(ps) > 1)
        first = pool[0]
        second = next(p for p in pool if _geo_key(index, p) != _geo_key(index, first))
        key1, key2 = _geo_key(index, first), _geo_key(index, second)
        assert key_slot(key1.encode()) != key_slot(key2.encode())
        await index.upsert([first, second])
        slot = key_slot(key2.encode())
        ports = [n.port for n in redis_cluster.masters()]
        calls = _spy(index)
        moved = [Position(p.driver_id, p.lat + 1e-5, p.lng, T + 1) for p in (first, second)]
        assert [_geo_key(index, p) for p in moved] == [key1, key2]  # moves inside
        # geo has left; meta and seen not yet
        async with _slot_moving(ports, source.port, slot, [key2]) as done:
            await index.upsert(moved)
            await done
            failed = [keys for name, keys, reply in calls if reply is NOT_RUN]
            assert len(failed) == 1 and list(failed[0]) == [key1, key2]
            again = [
                (k[0], r) for name, k, r in calls if name == "region_apply" and type(k) is list
            ]
            # Sent again: the first region was written whole (nothing to redo), the second
            # not at all (its change applies).
            assert dict(again) == {key1: 0, key2: 1}
            for p in moved:
                found = await index.nearest(p.lat, p.lng, 2, 50.0)
                assert [n.driver_id for n in found] == [p.driver_id]
                assert found[0].ts_ms == T + 1  # its new fix, not the old
            assert await client.zcard(key1) == 1 and await client.zcard(key2) == 1
    finally:
        await client.aclose()
