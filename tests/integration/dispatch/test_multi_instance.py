"""Two real instances on one Redis (or Redis Cluster): cross-instance offers, no double
booking under a flood of requests, idempotency across instances, offer timeouts that
outlive the instance that made the offer, and Redis outages answered with 503."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis, RedisCluster

from dispatch.adapters import ride_codec
from dispatch.domain.rides import ACTIVE, RideStatus
from dispatch.entrypoints import appkeys
from dispatch.settings import Settings
from loadtest.redis_procs import RedisServer
from tests.waiting import eventually

from .conftest import Instance, running
from .test_streams import BERLIN, connect, location, read_events, recv_type

pytestmark = pytest.mark.redis


def backend_settings(kind: str, request: pytest.FixtureRequest, **kw: Any) -> Settings:
    """Immediate matching unless `kw` says otherwise."""
    kw.setdefault("match_window_ms", 0)
    if kind == "cluster":
        return Settings(redis_cluster_url=request.getfixturevalue("redis_cluster_url"), **kw)
    return Settings(redis_url=request.getfixturevalue("redis_url"), **kw)


@asynccontextmanager
async def pair(settings: Settings) -> AsyncIterator[tuple[Instance, Instance]]:
    async with running(settings.with_overrides(instance_id="A")) as a:
        async with running(settings.with_overrides(instance_id="B")) as b:
            for inst in (a, b):
                notifier = inst.runner.app[appkeys.RUNTIME].deps.notifier
                await asyncio.wait_for(notifier.subscribed.wait(), 5)  # type: ignore[attr-defined]
            yield a, b


def client_for(settings: Settings) -> Redis | RedisCluster:
    if settings.redis_cluster_url:
        return RedisCluster.from_url(settings.redis_cluster_url)
    assert settings.redis_url
    return Redis.from_url(settings.redis_url)


async def stored_rides(settings: Settings) -> list[Any]:
    client = client_for(settings)
    try:
        rides = []
        async for key in client.scan_iter(match="dispatch:ride:*", count=1000):
            raw = await client.hget(key, "j")
            rides.append(ride_codec.decode(raw))
        return rides
    finally:
        await client.aclose()


async def driver_record(settings: Settings, driver_id: str) -> dict[bytes, bytes]:
    client = client_for(settings)
    try:
        return await client.hgetall(f"dispatch:driver:{{{driver_id}}}")  # type: ignore[no-any-return]
    finally:
        await client.aclose()


async def fleet_drivers(inst: Instance, n: int, spread: float = 0.02) -> None:
    ts = int(time.time() * 1000)
    updates = [
        {
            "driver_id": f"d{i:03d}",
            "lat": BERLIN["lat"] + spread * ((i % 10) / 10 - 0.5),
            "lng": BERLIN["lng"] + spread * ((i // 10) / (n / 10) - 0.5),
            "ts": ts,
            "seq": 1,
        }
        for i in range(n)
    ]
    status, data, _ = await inst.call(
        "POST", "/v1/locations", ("fleet", "gw"), json={"updates": updates}
    )
    assert status == 200 and {r["status"] for r in data["results"]} == {"accepted"}


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_an_offer_made_on_a_reaches_the_drivers_websocket_on_b(
    kind: str, request: pytest.FixtureRequest
) -> None:
    async with pair(backend_settings(kind, request)) as (a, b):
        async with await connect(b, "d1") as ws:
            await ws.send_json(location(1))
            await recv_type(ws, "ack")
            status, ride, resp = await a.call(
                "POST", "/v1/rides", ("rider", "u1"), json={"pickup": BERLIN}
            )
            assert status == 201 and resp.headers["X-Instance-Id"] == "A"
            assert ride["driver_id"] == "d1"
            offer = await recv_type(ws, "offer")
            assert offer["ride"]["id"] == ride["id"]
            events_url = f"{a.url}/v1/rides/{ride['id']}/events"
            async with a.session.get(events_url, headers=a.auth("rider", "u1")) as events:
                # Answered: A's stream subscribed to the ride before it sent the headers,
                # and A's notifier is subscribed to Redis (pair() waited for it).
                assert events.status == 200
                reader = asyncio.create_task(read_events(events, "accepted"))
                await ws.send_json({"type": "accept", "ride_id": ride["id"]})
                assert (await recv_type(ws, "ride"))["ride"]["status"] == "accepted"
                seen = await asyncio.wait_for(reader, 5)
            assert [e["status"] for e in seen] == ["offered", "accepted"]


@pytest.mark.slow
async def test_500_concurrent_requests_for_50_drivers_never_double_book(
    request: pytest.FixtureRequest,
) -> None:
    settings = backend_settings("redis", request)
    async with pair(settings) as (a, b):
        await fleet_drivers(a, 50)

        async def ask(i: int) -> dict[str, Any]:
            inst = a if i % 2 else b
            status, ride, _ = await inst.call(
                "POST",
                "/v1/rides",
                ("rider", f"u{i}"),
                json={"pickup": {"lat": BERLIN["lat"] + (i % 7) * 0.001, "lng": BERLIN["lng"]}},
            )
            assert status == 201, ride
            return ride  # type: ignore[no-any-return]

        answers = await asyncio.gather(*(ask(i) for i in range(500)))
    offered = [r for r in answers if r["status"] == "offered"]
    assert len(offered) + sum(r["status"] == "no_driver" for r in answers) == 500
    assert len({r["driver_id"] for r in offered}) == len(offered)
    assert len(offered) >= 45  # nearly every driver got exactly one ride
    # The stored state, not only the answers: no driver in two active rides ...
    rides = await stored_rides(settings)
    assert len(rides) == 500
    active = [r for r in rides if r.status in ACTIVE]
    per_driver = Counter(r.driver_id for r in active)
    assert per_driver and max(per_driver.values()) == 1
    # ... and every active ride holds its driver's current reservation token.
    for ride in active:
        rec = await driver_record(settings, ride.driver_id)
        assert rec[b"status"] == b"reserved"
        assert (rec[b"ride"].decode(), int(rec[b"fence"])) == (ride.id, ride.fence)


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_ten_concurrent_requests_with_one_key_make_one_ride(
    kind: str, request: pytest.FixtureRequest
) -> None:
    settings = backend_settings(kind, request)
    async with pair(settings) as (a, b):
        await fleet_drivers(a, 20)
        headers = {**a.auth("rider", "u1"), "Idempotency-Key": "same-key"}
        body = orjson.dumps({"pickup": BERLIN})

        async def ask(inst: Instance) -> tuple[int, bytes]:
            async with inst.session.post(f"{inst.url}/v1/rides", data=body, headers=headers) as r:
                return r.status, await r.read()

        answers = await asyncio.gather(*(ask(a if i % 2 else b) for i in range(10)))
    assert {status for status, _ in answers} == {201}
    assert len({raw for _, raw in answers}) == 1
    rides = await stored_rides(settings)
    assert len(rides) == 1 and rides[0].status is RideStatus.OFFERED


async def test_an_offer_times_out_after_the_instance_that_made_it_is_gone(
    request: pytest.FixtureRequest,
) -> None:
    settings = backend_settings("redis", request, offer_timeout_s=1.0)
    async with running(settings.with_overrides(instance_id="B")) as b:
        async with running(settings.with_overrides(instance_id="A")) as a:
            await a.fix("d1", BERLIN["lat"] + 0.0001, BERLIN["lng"])
            await a.fix("d2", BERLIN["lat"] + 0.0002, BERLIN["lng"])
            _, ride, _ = await a.call("POST", "/v1/rides", ("rider", "u1"), json={"pickup": BERLIN})
            assert ride["driver_id"] == "d1"

        # A is gone; only B is left to notice that d1 never answered.
        async def passed_to_d2() -> Any:
            _, now, _ = await b.call("GET", f"/v1/rides/{ride['id']}", ("rider", "u1"))
            assert now["driver_id"] == "d2", now
            return now

        now = await eventually(passed_to_d2, interval_s=0.1, what="B to pass the ride on to d2")
        assert (now["status"], now["driver_id"]) == ("offered", "d2")
        assert now["offer_expires_at"] > ride["offer_expires_at"]
        _, d1, _ = await b.call("GET", "/v1/drivers/d1", ("driver", "d1"))
        assert (d1["status"], d1["ride_id"]) == ("available", None)
        assert (await b.call("POST", f"/v1/rides/{ride['id']}/accept", ("driver", "d1")))[0] == 403


async def test_a_redis_outage_is_a_quick_503_with_a_json_error() -> None:
    with RedisServer() as redis:
        settings = Settings(redis_url=redis.url, redis_timeout_s=0.5, match_window_ms=0)
        async with running(settings) as inst:
            await inst.fix("d1", BERLIN["lat"], BERLIN["lng"])
            redis.node.stop()
            started = time.monotonic()
            fresh = {
                "lat": BERLIN["lat"],
                "lng": BERLIN["lng"],
                "ts": int(time.time() * 1000) + 5,
                "seq": 2,
            }
            for method, path, who, body in (
                ("POST", "/v1/drivers/d1/location", ("driver", "d1"), fresh),
                ("POST", "/v1/rides", ("rider", "u1"), {"pickup": BERLIN}),
                ("GET", "/v1/drivers/d1", ("driver", "d1"), None),
            ):
                status, data, _ = await inst.call(method, path, who, json=body)
                assert (status, data["error"]) == (503, "backend_unavailable")
            assert time.monotonic() - started < 10
            assert (await inst.call("GET", "/healthz"))[0] == 200
            status, data, _ = await inst.call("GET", "/readyz")
            assert (status, data["error"]) == (503, "backend_unavailable")
