"""Surge across real processes on one Redis: both instances quote the same multiplier,
and when the instance recomputing the region is SIGKILLed (no goodbye: its lease must
lapse) the other takes the region over within the lease."""

from __future__ import annotations

import signal
import time

import aiohttp
import pytest
import redis.asyncio as aredis
from h3.api import basic_str as h3

from tests.waiting import eventually

from .conftest import Served, serve
from .test_whole_ride import auth

HOT = {"lat": 52.52, "lng": 13.405}
FAR = {"lat": 52.549, "lng": 13.387}  # the same region (res 5), four rings away at res 8
LEASE_S, INTERVAL_S = 2.0, 0.2  # a lease well above a round, even on a loaded machine
ENV = {"DISPATCH_SURGE_LEASE_S": str(LEASE_S), "DISPATCH_SURGE_INTERVAL_S": str(INTERVAL_S)}


async def quote(http: aiohttp.ClientSession, at: Served, rider: str, pickup: object) -> float:
    async with http.post(
        f"{at.url}/v1/quotes", headers=auth(f"rider:{rider}"), json={"pickup": pickup}
    ) as r:
        assert r.status == 201, await r.text()
        return float((await r.json())["surge"])


async def crowd(http: aiohttp.ClientSession, at: Served, prefix: str, pickup: object) -> None:
    for i in range(40):
        await quote(http, at, f"{prefix}{i}", pickup)


@pytest.mark.slow
@pytest.mark.redis
async def test_a_killed_recomputing_instance_is_replaced_within_the_lease(
    redis_url: str,
) -> None:
    cell = h3.latlng_to_cell(HOT["lat"], HOT["lng"], 8)
    assert h3.cell_to_parent(cell, 5) == h3.cell_to_parent(
        h3.latlng_to_cell(FAR["lat"], FAR["lng"], 8), 5
    )
    lease_key = f"mk:{{r{h3.cell_to_parent(cell, 5)}}}:lease"
    raw = aredis.Redis.from_url(redis_url)
    doomed = serve("--redis-url", redis_url, "--instance-id", "A", env=ENV)
    survivor: Served | None = None
    try:
        async with aiohttp.ClientSession() as http:
            await crowd(http, doomed, "hot", HOT)

            async def a_surges() -> bool:
                return await quote(http, doomed, "probe", HOT) > 1.0

            await eventually(a_surges, 10, 0.1, what="A to price the crowd")
            holder = (await raw.get(lease_key)).decode().split()[1]
            assert holder.startswith("A/")
            survivor = serve("--redis-url", redis_url, "--instance-id", "B", env=ENV)
            assert await quote(http, survivor, "probe", HOT) == await quote(
                http, doomed, "probe", HOT
            )
            doomed.stop(signal.SIGKILL)
            killed_at = time.monotonic()
            await crowd(http, survivor, "far", FAR)  # only a live holder can price these

            async def b_prices_far() -> bool:
                return await quote(http, survivor, "probe", FAR) > 1.0

            await eventually(b_prices_far, 10, 0.05, what="B to take the region over")
            took = time.monotonic() - killed_at
            assert took <= LEASE_S + 3 * INTERVAL_S + 1.0, took  # + the crowd's own quotes
            assert (await raw.get(lease_key)).decode().split()[1].startswith("B/")
    finally:
        doomed.stop(signal.SIGKILL)
        if survivor is not None:
            survivor.stop()
        await raw.aclose()
