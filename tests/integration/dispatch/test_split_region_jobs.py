"""Per-region jobs over a split region: they keep their own res-5 partition (a window,
a surge recompute and a queue are per ride, not per fix), and what they read from the
geo index (k-nearest, supply per cell) spans the finer regions of a split parent."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aredis
from h3.api import basic_int as h3

from geoindex import RedisGeoIndex
from tests.waiting import eventually

from .conftest import running
from .test_batched_http import BATCHED, ride_of
from .test_streams import BERLIN

pytestmark = pytest.mark.redis

PARENT = h3.latlng_to_cell(BERLIN["lat"], BERLIN["lng"], 5)


async def test_a_batch_window_in_a_split_region_offers_the_nearest_across_its_regions(
    redis_url: str,
) -> None:
    client = aredis.Redis.from_url(redis_url)
    await RedisGeoIndex(client).split_region(h3.int_to_str(PARENT), 7, settle_s=0.0)
    # Two drivers in two different res-7 regions of the parent, the nearer one across the
    # border of the pickup's own region.
    pickup_region = h3.latlng_to_cell(BERLIN["lat"], BERLIN["lng"], 7)
    other = next(c for c in h3.grid_ring(pickup_region, 1) if h3.cell_to_parent(c, 5) == PARENT)
    near = h3.cell_to_latlng(h3.cell_to_center_child(other, 15))
    async with running(replace(BATCHED, redis_url=redis_url)) as inst:
        await inst.fix("far", BERLIN["lat"] + 0.05, BERLIN["lng"])
        await inst.fix("near", *near)
        assert await client.hexists(f"gi:{{r{other:x}}}:meta", "near")
        _, ride, _ = await inst.call(
            "POST", "/v1/rides", ("rider", "u1"), json={"pickup": BERLIN},
            headers={"Prefer": "wait=5"},
        )  # fmt: skip

        async def offered() -> dict[str, Any]:
            now = await ride_of(inst, ride["id"], "u1")
            assert (now["status"], now["driver_id"]) == ("offered", "near"), now
            return now

        await eventually(offered, interval_s=0.05, what="the window to offer the ride")
    await client.aclose()
