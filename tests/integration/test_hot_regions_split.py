"""`loadtest.hot_regions` on an index whose hot cell is already split: it ranks the
finer regions, and proposes what is left: for a region at res 7, a master of its own."""

from __future__ import annotations

import asyncio
import contextlib

import h3
import pytest
from redis.asyncio.cluster import RedisCluster

from geoindex import RedisGeoIndex
from loadtest import hot_regions
from tests.integration.test_hot_regions import HOT, HOT_DRIVERS, _drivers, _load

pytestmark = pytest.mark.redis


async def test_the_regions_of_a_split_cell_are_ranked_and_proposed_finer(
    redis_cluster_url: str,
) -> None:
    client = RedisCluster.from_url(redis_cluster_url)
    await client.initialize()
    index = RedisGeoIndex(client, ttl_ms=600_000, prefix="gi")
    stop = asyncio.Event()
    try:
        await index.split_region(HOT, 7, settle_s=0.0)
        load = asyncio.create_task(
            _load(index, _drivers(HOT, HOT_DRIVERS), h3.cell_to_latlng(HOT), stop)
        )
        await asyncio.sleep(0.2)
        # 49 regions share the load: each about a fiftieth of its master's.
        result = await hot_regions.sample(
            redis_cluster_url, 1.5, cpu_threshold=0.001, min_share=0.005, top=49
        )
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, NameError):
            await load
        await index.split_region(HOT, 5, settle_s=0.0)
        await client.aclose()
    rows = result["regions"]
    assert rows and {r["cell"] for r in rows} <= set(h3.cell_to_children(HOT, 7))
    assert sum(r["drivers"] for r in rows) == HOT_DRIVERS
    proposed = result["proposal"]["split"]
    # Already at the finest split: what is left for a hot one is a master of its own.
    assert proposed and all(p["res"] == 7 and p["still_hot"] for p in proposed)
