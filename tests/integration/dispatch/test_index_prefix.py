"""The stores find a driver's last fix through the geo index, whatever key prefix the
index is given: with a non-default prefix a fresh driver is still offered the ride (it
used to look stale to the reserving script, and every ride came back no_driver)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis, RedisCluster

from dispatch.bootstrap import bootstrap
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import RideStatus
from dispatch.service_layer import ride_steps
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from geoindex import Position

from .conftest import FakeClock, settings_for

pytestmark = pytest.mark.redis
HERE = LatLng(52.52, 13.405)


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_a_non_default_index_prefix_still_gets_offers(
    kind: str, request: pytest.FixtureRequest
) -> None:
    settings = settings_for(kind, request)
    url = settings.redis_cluster_url or settings.redis_url
    assert url is not None
    clock = FakeClock()
    async with bootstrap(settings, clock=clock, index_prefix="fleet7") as runtime:
        deps = runtime.deps
        await deps.index.upsert([Position("d1", 52.5201, 13.405, clock.now)])
        rider, driver = Principal(Role.RIDER, "u1"), Principal(Role.DRIVER, "d1")
        ride = await request_ride(deps, rider, new_ride_id("u1", None), HERE, None)
        assert ride.status is RideStatus.OFFERED and ride.driver_id == "d1"
        accepted = await ride_steps.accept(deps, driver, ride.id)
        assert accepted.status is RideStatus.ACCEPTED

        # The index wrote under its own prefix only: nothing under the default one.
        raw = RedisCluster.from_url(url) if kind == "cluster" else Redis.from_url(url)
        try:
            assert await raw.exists("fleet7:d:{d1}") == 1
            assert await raw.exists("gi:d:{d1}") == 0
        finally:
            await raw.aclose()

        # The reservation reads the fix time under that prefix: fresh is taken, stale is not.
        await deps.index.upsert([Position("d2", 52.5202, 13.405, clock.now)])
        clock.advance(deps.index.ttl_ms)
        await deps.index.upsert([Position("d3", 52.5203, 13.405, clock.now)])
        clock.advance(1)
        now = clock.now
        assert await deps.drivers.reserve("d3", "r3", now, now + 30_000) is not None
        assert await deps.drivers.reserve("d2", "r2", now, now + 30_000) is None
