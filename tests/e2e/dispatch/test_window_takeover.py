"""Batched matching across real processes on a Redis Cluster: 500 riders for 50 drivers
through two instances; the instance solving the region's windows is SIGKILLed half way
(no goodbye: its lease must lapse). The other takes the region over; every acknowledged
request ends offered or no_driver, none is left searching, no driver is in two active
rides, and every driver ends with a ride."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest
from h3.api import basic_str as h3
from redis.asyncio import RedisCluster

from dispatch.adapters import ride_codec
from dispatch.domain.rides import ACTIVE, RideStatus
from tests.waiting import eventually

from .conftest import Served, serve
from .test_whole_ride import auth

BERLIN = {"lat": 52.52, "lng": 13.405}
ENV = {
    "DISPATCH_MATCH_WINDOW_MS": "200",
    "DISPATCH_MATCH_LEASE_WINDOWS": "10",  # a lease of 2 s
    "DISPATCH_MATCH_MAX_WAIT_S": "10",  # several windows each, even on a loaded machine
    "DISPATCH_DRIVER_TTL_S": "600",
    "DISPATCH_OFFER_TIMEOUT_S": "120",  # no offer runs out (and moves on) while we read
}


async def post_fleet(http: aiohttp.ClientSession, at: Served, n: int) -> None:
    ts = int(time.time() * 1000)
    updates = [
        {
            "driver_id": f"d{i:02d}",
            "lat": BERLIN["lat"] + 0.002 * (i % 10 - 5),
            "lng": BERLIN["lng"] + 0.003 * (i // 10 - 2),
            "ts": ts,
            "seq": 1,
        }
        for i in range(n)
    ]
    async with http.post(
        f"{at.url}/v1/locations", headers=auth("fleet:gw"), json={"updates": updates}
    ) as r:
        assert r.status == 200, await r.text()


async def ask(http: aiohttp.ClientSession, at: Served, i: int) -> str | None:
    """The ride's id if the instance acknowledged the request (201)."""
    body = {"pickup": {"lat": BERLIN["lat"] + (i % 7) * 0.001, "lng": BERLIN["lng"]}}
    try:
        async with http.post(f"{at.url}/v1/rides", headers=auth(f"rider:u{i}"), json=body) as r:
            if r.status != 201:
                return None
            ride: dict[str, Any] = await r.json()
            assert ride["status"] == "searching"
            return str(ride["id"])
    except aiohttp.ClientError:
        return None  # sent to the instance being killed: never acknowledged


async def stored(client: RedisCluster) -> dict[str, Any]:
    rides = {}
    async for key in client.scan_iter(match="dispatch:ride:*", count=1000):
        ride = ride_codec.decode(await client.hget(key, "j"))
        rides[ride.id] = ride
    return rides


@pytest.mark.slow
@pytest.mark.redis
async def test_the_solver_killed_mid_run_loses_and_doubles_nothing(
    redis_cluster_url: str,
) -> None:
    region = h3.latlng_to_cell(BERLIN["lat"], BERLIN["lng"], 5)
    lease_key = f"pq:{{r{region}}}:lease"
    client = RedisCluster.from_url(redis_cluster_url)
    a = serve("--redis-cluster-url", redis_cluster_url, "--instance-id", "A", env=ENV)
    b = serve("--redis-cluster-url", redis_cluster_url, "--instance-id", "B", env=ENV)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            await post_fleet(http, a, 50)
            first = await asyncio.gather(*(ask(http, a if i % 2 else b, i) for i in range(250)))

            async def a_holder() -> str:
                raw = await client.get(lease_key)
                assert raw is not None
                return str(raw.decode().split()[1])

            holder = await eventually(a_holder, 10, 0.05, what="a solver")
            doomed, survivor = (a, b) if holder.startswith("A/") else (b, a)
            doomed.stop(signal.SIGKILL)
            rest = await asyncio.gather(*(ask(http, survivor, i) for i in range(250, 500)))
        acknowledged = [r for r in first + rest if r is not None]
        assert len(acknowledged) >= 250 + 200  # those sent to the survivor all answered

        async def settled() -> dict[str, Any]:
            rides = await stored(client)
            left = [r for r in rides.values() if r.status is RideStatus.SEARCHING]
            assert not left, f"{len(left)} still searching"
            return rides

        rides = await eventually(settled, 45, 0.5, what="every window to be solved")
        assert set(acknowledged) <= set(rides)  # nothing acknowledged was lost
        assert {r.status for r in rides.values()} <= {RideStatus.OFFERED, RideStatus.NO_DRIVER}
        active = [r for r in rides.values() if r.status in ACTIVE]
        per_driver = Counter(r.driver_id for r in active)
        assert max(per_driver.values()) == 1  # no driver in two active rides
        assert all(r.attempts == 1 for r in active)  # each matched once
        # Every driver: those the killed solver reserved and never named are freed by its
        # successor's first window (batching.free_stale_holds), not when their leases lapse.
        assert len(active) == 50
        assert str((await client.get(lease_key) or b"- -").decode()).split()[1] != holder
    finally:
        a.stop(signal.SIGKILL)
        b.stop(signal.SIGKILL)
        await client.aclose()
