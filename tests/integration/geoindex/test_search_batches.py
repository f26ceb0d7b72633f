"""Concurrent searches on Redis send their scans together, one batch per turn of the event
loop (on a cluster, one per set of nodes read): the same answers as searches run one at a
time, and a failed batch fails each search it carried without holding back the next ones."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import pytest
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster

from geoindex import Position, RedisGeoIndex, SearchConfig
from geoindex.errors import BackendUnavailable

pytestmark = pytest.mark.redis

LAT, LNG, T = 52.52, 13.405, 1_700_000_000_000
_RNG = random.Random(8)
POINTS = [(LAT + _RNG.uniform(-0.04, 0.04), LNG + _RNG.uniform(-0.06, 0.06)) for _ in range(40)]


async def _loaded(client: Any, config: SearchConfig | None = None) -> RedisGeoIndex:
    index = RedisGeoIndex(client, ttl_ms=600_000, clock=lambda: T + 10_000, config=config)
    rng = random.Random(7)
    await index.upsert(
        [
            Position(f"d{i}", LAT + rng.uniform(-0.05, 0.05), LNG + rng.uniform(-0.08, 0.08), T)
            for i in range(2_000)
        ]
    )
    return index


def _counted(index: RedisGeoIndex) -> list[Sequence[Any]]:
    """The script calls of each batch the index's runner sends."""
    batches: list[Sequence[Any]] = []
    inner = index._scripts.run

    async def run(calls: Sequence[Any]) -> list[Any]:
        batches.append(calls)
        return await inner(calls)

    index._scripts.run = run  # type: ignore[method-assign]
    return batches


async def test_concurrent_searches_share_batches_and_answer_as_alone(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url)
    try:
        await client.flushdb()
        index = await _loaded(client)
        alone = [await index.nearest(lat, lng, 5, 3_000) for lat, lng in POINTS]
        batches = _counted(index)
        together = await asyncio.gather(*(index.nearest(lat, lng, 5, 3_000) for lat, lng in POINTS))
        assert list(together) == alone
        # Every search's first step left in the first batch.
        assert len(batches[0]) >= len(POINTS)
        assert len(batches) < len(POINTS)
    finally:
        await client.aclose()


async def test_on_a_cluster_a_batch_holds_the_searches_reading_the_same_nodes(
    redis_cluster_url: str,
) -> None:
    client = RedisCluster.from_url(redis_cluster_url)
    try:
        await client.flushall()
        # Res-7 regions (about 1.2 km across): the searches read regions on every node.
        index = await _loaded(client, SearchConfig(region_res=7))
        alone = [await index.nearest(lat, lng, 5, 3_000) for lat, lng in POINTS]
        batches = _counted(index)
        together = await asyncio.gather(*(index.nearest(lat, lng, 5, 3_000) for lat, lng in POINTS))
        assert list(together) == alone
        nodes = [
            frozenset(client.get_node_from_key(keys[0]).name for _, keys, _ in calls)
            for calls in batches
        ]
        # Searches went together, in batches each of one node (or of the nodes a search
        # on a region border reads), not one batch of every node's scans.
        assert len(batches) < len(POINTS)
        assert len({n for n in nodes if len(n) == 1}) > 1
        assert max(len(n) for n in nodes) < 3
    finally:
        await client.aclose()


async def test_a_failed_batch_fails_each_search_in_it(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url)
    try:
        await client.flushdb()
        index = await _loaded(client)
        inner = index._scripts.run

        async def down(calls: Sequence[Any]) -> list[Any]:
            raise BackendUnavailable("redis unavailable: test")

        index._scripts.run = down  # type: ignore[method-assign]
        failed = await asyncio.gather(
            *(index.nearest(LAT, LNG + i * 1e-3, 5, 2_000) for i in range(10)),
            return_exceptions=True,
        )
        assert all(isinstance(f, BackendUnavailable) for f in failed)
        index._scripts.run = inner  # type: ignore[method-assign]
        assert len(await index.nearest(LAT, LNG, 5, 2_000)) == 5
    finally:
        await client.aclose()
