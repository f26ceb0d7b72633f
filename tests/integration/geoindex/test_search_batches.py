"""Concurrent searches on Redis send their scans together, one batch per turn of the event
loop: the same answers as searches run one at a time, and a failed batch fails each search
it carried without holding back the next ones."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import pytest
import redis.asyncio as aredis

from geoindex import Position, RedisGeoIndex
from geoindex.errors import BackendUnavailable

pytestmark = pytest.mark.redis

LAT, LNG, T = 52.52, 13.405, 1_700_000_000_000


async def _loaded(client: Any) -> RedisGeoIndex:
    index = RedisGeoIndex(client, ttl_ms=600_000, clock=lambda: T + 10_000)
    rng = random.Random(7)
    await index.upsert(
        [
            Position(f"d{i}", LAT + rng.uniform(-0.05, 0.05), LNG + rng.uniform(-0.08, 0.08), T)
            for i in range(2_000)
        ]
    )
    return index


def _counted(index: RedisGeoIndex) -> list[int]:
    """The script calls of each batch the index's runner sends."""
    batches: list[int] = []
    inner = index._scripts.run

    async def run(calls: Sequence[Any]) -> list[Any]:
        batches.append(len(calls))
        return await inner(calls)

    index._scripts.run = run  # type: ignore[method-assign]
    return batches


async def test_concurrent_searches_share_batches_and_answer_as_alone(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url)
    try:
        await client.flushdb()
        index = await _loaded(client)
        rng = random.Random(8)
        points = [
            (LAT + rng.uniform(-0.04, 0.04), LNG + rng.uniform(-0.06, 0.06)) for _ in range(40)
        ]
        alone = [await index.nearest(lat, lng, 5, 3_000) for lat, lng in points]
        batches = _counted(index)
        together = await asyncio.gather(*(index.nearest(lat, lng, 5, 3_000) for lat, lng in points))
        assert list(together) == alone
        # Every search's first step left in the first batch.
        assert batches[0] >= len(points)
        assert len(batches) < len(points)
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
