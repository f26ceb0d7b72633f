"""A reservation lost in a Redis failover (asynchronous replication) cannot turn into a
double booking: the next reservation gets a larger token, and accepting presents the
ride id and token, so the ride whose reservation was lost can never be accepted."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis, RedisCluster

from dispatch.bootstrap import bootstrap
from dispatch.domain.errors import InvalidTransition
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import RideStatus
from dispatch.service_layer import ride_steps
from dispatch.service_layer.deadlines import expire_offer
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from geoindex import Position

from .conftest import FakeClock, settings_for

pytestmark = pytest.mark.redis
HERE = LatLng(52.52, 13.405)


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_a_lost_reservation_write_never_yields_a_double_booking(
    kind: str, request: pytest.FixtureRequest
) -> None:
    settings = settings_for(kind, request)
    url = settings.redis_cluster_url or settings.redis_url
    assert url is not None
    raw = RedisCluster.from_url(url) if kind == "cluster" else Redis.from_url(url)
    clock = FakeClock()
    async with bootstrap(settings, clock=clock) as runtime:
        deps = runtime.deps
        await deps.index.upsert([Position("d1", 52.5201, 13.405, clock.now)])
        u1, u2, d1 = (
            Principal(Role.RIDER, "u1"),
            Principal(Role.RIDER, "u2"),
            Principal(Role.DRIVER, "d1"),
        )
        first = await request_ride(deps, u1, new_ride_id("u1", None), HERE, None)
        assert first.driver_id == "d1" and first.fence is not None
        # The failover: the replica that took over never saw the reservation.
        await raw.delete("dispatch:driver:{d1}")
        await deps.index.set_available("d1", True)
        clock.advance(1)
        second = await request_ride(deps, u2, new_ride_id("u2", None), HERE, None)
        assert second.driver_id == "d1" and second.fence is not None
        assert second.fence > first.fence
        with pytest.raises(InvalidTransition):
            await ride_steps.accept(deps, d1, first.id)
        accepted = await ride_steps.accept(deps, d1, second.id)
        assert accepted.status is RideStatus.ACCEPTED
        stale = await deps.rides.get(first.id)
        assert stale is not None and stale.status is RideStatus.OFFERED
        # Its offer runs out and it moves on; d1 stays on the ride it accepted.
        clock.advance(deps.policy.offer_timeout_ms)
        await expire_offer(deps, first.id)
        moved = await deps.rides.get(first.id)
        assert moved is not None and moved.status is RideStatus.NO_DRIVER
        rec = await deps.drivers.get("d1")
        assert (rec.ride_id, rec.fence) == (second.id, second.fence)
    await raw.aclose()
