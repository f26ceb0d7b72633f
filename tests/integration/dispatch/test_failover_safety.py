"""A reservation lost in a Redis failover (asynchronous replication) cannot turn into a
double booking: the next reservation gets a larger token, and accepting presents the
ride id and token, so the ride whose reservation was lost can never be accepted. And a
command the client library re-sends after a broken connection is answered as its first
send was."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis, RedisCluster

from dispatch.adapters.redis_client import UNTOUCHED_KEEP_MS, connect, script
from dispatch.bootstrap import bootstrap
from dispatch.domain.errors import InvalidTransition
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import RideStatus
from dispatch.service_layer import ride_steps
from dispatch.service_layer.deadlines import expire_offer
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from geoindex import Position, RedisGeoIndex, ScriptRunner

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


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_a_call_sent_again_after_its_reply_was_lost_gets_the_first_answer(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """redis-py re-sends a command whose connection broke mid-failover. If the first send
    had done its work, a script judging the re-send afresh would see its own effect as
    someone else's: an Idempotency-Key held by "another" request (409 after a wait), a
    ride "created by another" (whose driver would be released under it), a release
    "already done" (the driver left unsearchable). Each re-send must get the first answer,
    and a second call of its own must still be judged afresh."""
    settings = settings_for(kind, request)
    url = settings.redis_cluster_url or settings.redis_url
    assert url is not None
    client = connect(url, cluster=kind == "cluster")
    try:
        runner = ScriptRunner(client)
        now = 1_700_000_000_000
        keep = UNTOUCHED_KEEP_MS
        drv, idx = ["dispatch:driver:{d1}", RedisGeoIndex(client).driver_key("d1")]
        await client.hset(idx, mapping={"ts": now})

        async def run(name: str, keys: list[str], args: list[object]) -> object:
            return await runner.call(script(name), keys, args)

        async def twice(name: str, keys: list[str], args: list[object]) -> list[object]:
            return [await run(name, keys, args) for _ in range(2)]

        idem = ["dispatch:idem:{resend}"]
        claimed = await twice("idem_begin", idem, ["fp", "token-1", 3_000])
        assert claimed == [[b"new"], [b"new"]]
        assert await run("idem_begin", idem, ["fp", "token-2", 3_000]) == [b"pending"]

        reserve = [now, now + 30_000, 30_000]
        reserved = await twice("driver_reserve", [drv, idx], ["r1", *reserve, "a", keep])
        assert reserved[0] == reserved[1] and len(reserved[0]) == 1  # type: ignore[arg-type]
        fence = reserved[0][0]  # type: ignore[index]
        again = await run("driver_reserve", [drv, idx], ["r2", *reserve, "b", keep])
        assert again == [0, b"reserved"]

        ride = ["dispatch:ride:{r1}"]
        assert await twice("ride_put", ride, [0, 1, b"{}", 0, "c"]) == [1, 1]
        assert await run("ride_put", ride, [0, 1, b"{}", 0, "d"]) == 0

        assert await twice("driver_release", [drv], ["r1", fence, "e", keep]) == [1, 1]
        assert await run("driver_release", [drv], ["r1", fence, "f", keep]) == 0

        await run("driver_reserve", [drv, idx], ["r3", now, now + 1, 30_000, "g", keep])
        assert await twice("driver_expire_lease", [drv], [now + 2, "h", keep]) == [1, 1]
        assert await run("driver_expire_lease", [drv], [now + 2, "i", keep]) == 0
    finally:
        await client.aclose()
