"""Batched matching's windows solved by one instance per region; when it dies another
takes the region over within two lease periods, and nothing is lost or matched twice."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from redis.asyncio import RedisCluster

from dispatch.bootstrap import bootstrap
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import RideStatus
from dispatch.service_layer.batching import run_window_job, window_round
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from dispatch.settings import Settings
from geoindex import Position
from tests.waiting import eventually

pytestmark = pytest.mark.redis

WINDOW_MS, LEASE_WINDOWS = 100, 5
LEASE_S = WINDOW_MS * LEASE_WINDOWS / 1000
HERE = LatLng(52.52, 13.405)


@contextlib.asynccontextmanager
async def job(deps: Deps, holder: str, give_up: bool = True) -> AsyncIterator[None]:
    task = asyncio.create_task(run_window_job(deps, holder, give_up_leases=give_up))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def ask(deps: Deps, who: str) -> str:
    ride = await request_ride(deps, Principal(Role.RIDER, who), new_ride_id(who, None), HERE, None)
    assert ride.status is RideStatus.SEARCHING
    return ride.id


async def drivers(deps: Deps, ids: range) -> None:
    now = int(time.time() * 1000)
    await deps.index.upsert(
        [Position(f"d{i}", HERE.lat + 0.0005 * (i % 10), HERE.lng + 0.0005 * (i // 10), now)
         for i in ids]
    )  # fmt: skip


async def test_a_dead_solver_is_replaced_and_no_ride_is_lost_or_doubled(
    request: pytest.FixtureRequest,
) -> None:
    url = request.getfixturevalue("redis_cluster_url")
    settings = Settings(
        redis_cluster_url=url, match_window_ms=WINDOW_MS, match_lease_windows=LEASE_WINDOWS
    )
    async with AsyncExitStack() as stack:
        client = RedisCluster.from_url(url)
        stack.push_async_callback(client.aclose)
        a = (await stack.enter_async_context(bootstrap(settings))).deps
        b = (await stack.enter_async_context(bootstrap(settings))).deps
        assert a.batching is not None
        region = a.batching.region_of(HERE)
        lease_key = f"pq:{{r{region:x}}}:lease"
        await drivers(a, range(20))
        first = [await ask(a, f"u{i}") for i in range(10)]
        async with job(a, "a", give_up=False):

            async def a_matched_them() -> bool:
                for ride_id in first:
                    ride = await a.rides.get(ride_id)
                    assert ride is not None and ride.status is RideStatus.OFFERED
                return True

            await eventually(a_matched_them, timeout_s=10, what="a to solve the first window")
            assert (await client.get(lease_key)).decode().split()[1] == "a"
            async with job(b, "b"):
                await asyncio.sleep(3 * WINDOW_MS / 1000)
                assert (await client.get(lease_key)).decode().split()[1] == "a"  # b waits
                # a dies here (its lease is left to lapse); riders keep asking, on b.
        killed = time.monotonic()
        await drivers(b, range(20, 40))
        second = [await ask(b, f"v{i}") for i in range(10)]
        async with job(b, "b"):

            async def b_matched_them() -> bool:
                for ride_id in second:
                    ride = await b.rides.get(ride_id)
                    assert ride is not None and ride.status is RideStatus.OFFERED
                return True

            await eventually(b_matched_them, timeout_s=10, what="b to take the region over")
            took_s = time.monotonic() - killed
            assert (await client.get(lease_key)).decode().split()[1] == "b"
        assert took_s < 2 * LEASE_S + 1.0  # within two lease periods (+ slack for CI)
        rides = [await b.rides.get(r) for r in first + second]
        assert all(r is not None and r.attempts == 1 for r in rides)  # each matched once
        per_driver = Counter(r.driver_id for r in rides if r is not None)
        assert max(per_driver.values()) == 1
        # Entries of rides matched are dropped by the window after (or the same one, if
        # the job was not stopped in between): none is left behind.
        await window_round(b, "b", {})
        assert (await b.batching.store.pending(region, 100)).entries == []  # type: ignore[union-attr]
