"""Batched matching through real instances: `searching` answers, `Prefer: wait`, a
decline sent to the next window, and two instances on a Redis Cluster under a flood."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson
import pytest
from redis.asyncio import RedisCluster

from dispatch.adapters import ride_codec
from dispatch.domain.rides import ACTIVE, RideStatus
from dispatch.settings import Settings
from tests.waiting import eventually

from .conftest import Instance, running
from .test_multi_instance import fleet_drivers, pair
from .test_streams import BERLIN

BATCHED = Settings(instance_id="t", match_window_ms=200, match_max_wait_s=3)


async def ride_of(inst: Instance, ride_id: str, rider: str) -> dict[str, Any]:
    status, ride, _ = await inst.call("GET", f"/v1/rides/{ride_id}", ("rider", rider))
    assert status == 200, ride
    return ride  # type: ignore[no-any-return]


async def test_a_request_answers_searching_then_its_window_offers_it() -> None:
    async with running(BATCHED) as inst:
        await inst.fix("d1", BERLIN["lat"] + 0.001, BERLIN["lng"])
        status, ride, _ = await inst.call(
            "POST", "/v1/rides", ("rider", "u1"), json={"pickup": BERLIN}
        )
        assert (status, ride["status"], ride["driver_id"]) == (201, "searching", None)

        async def offered() -> dict[str, Any]:
            now = await ride_of(inst, ride["id"], "u1")
            assert now["status"] == "offered", now
            return now

        now = await eventually(offered, interval_s=0.05, what="the window to offer the ride")
        assert now["driver_id"] == "d1" and now["eta_s"] > 0
        status, text, _ = await inst.call("GET", "/metrics")
        assert status == 200
        assert b'dispatch_match_window_riders_total{outcome="matched"} 1.0' in text
        assert b"dispatch_match_window_solve_seconds_count" in text


async def test_prefer_wait_answers_with_the_matched_ride() -> None:
    async with running(BATCHED) as inst:
        await inst.fix("d1", BERLIN["lat"] + 0.001, BERLIN["lng"])
        status, ride, _ = await inst.call(
            "POST", "/v1/rides", ("rider", "u1"), json={"pickup": BERLIN},
            headers={"Prefer": "wait=5"},
        )  # fmt: skip
        assert (status, ride["status"], ride["driver_id"]) == (201, "offered", "d1")
        # Nobody to match: the answer comes back searching when the wait is over.
        status, ride, _ = await inst.call(
            "POST", "/v1/rides", ("rider", "u2"), json={"pickup": BERLIN},
            headers={"Prefer": "respond-async, wait=0.5"},
        )  # fmt: skip
        assert (status, ride["status"]) == (201, "searching")


async def test_a_declined_offer_goes_to_the_next_window_without_the_decliner() -> None:
    async with running(BATCHED) as inst:
        await inst.fix("near", BERLIN["lat"] + 0.001, BERLIN["lng"])
        await inst.fix("far", BERLIN["lat"] + 0.005, BERLIN["lng"])
        _, ride, _ = await inst.call(
            "POST", "/v1/rides", ("rider", "u1"), json={"pickup": BERLIN},
            headers={"Prefer": "wait=5"},
        )  # fmt: skip
        assert ride["driver_id"] == "near"
        status, back, _ = await inst.call(
            "POST", f"/v1/rides/{ride['id']}/decline", ("driver", "near")
        )
        assert (status, back["status"]) == (200, "searching")

        async def reoffered() -> dict[str, Any]:
            now = await ride_of(inst, ride["id"], "u1")
            assert now["status"] == "offered", now
            return now

        now = await eventually(reoffered, interval_s=0.05, what="the next window")
        assert now["driver_id"] == "far"


async def test_a_searching_ride_may_be_cancelled() -> None:
    async with running(BATCHED) as inst:
        _, ride, _ = await inst.call("POST", "/v1/rides", ("rider", "u1"), json={"pickup": BERLIN})
        status, done, _ = await inst.call("POST", f"/v1/rides/{ride['id']}/cancel", ("rider", "u1"))
        assert (status, done["status"]) == (200, "cancelled")


@pytest.mark.slow
@pytest.mark.redis
async def test_two_instances_on_a_cluster_500_riders_50_drivers(
    request: pytest.FixtureRequest,
) -> None:
    settings = Settings(
        redis_cluster_url=request.getfixturevalue("redis_cluster_url"),
        match_window_ms=300,
        # Under the flood a window can stall for seconds on a loaded machine: a lease and
        # a wait long enough that riders see several windows, and no offer runs out (and
        # moves on) while the test reads.
        match_max_wait_s=20,
        match_lease_windows=20,
        offer_timeout_s=120,
    )
    async with pair(settings) as (a, b):
        await fleet_drivers(a, 50)

        async def ask(i: int) -> dict[str, Any]:
            inst = a if i % 2 else b
            body = {"pickup": {"lat": BERLIN["lat"] + (i % 7) * 0.001, "lng": BERLIN["lng"]}}
            status, ride, _ = await inst.call("POST", "/v1/rides", ("rider", f"u{i}"), json=body)
            assert status == 201 and ride["status"] == "searching", ride
            return ride  # type: ignore[no-any-return]

        await asyncio.gather(*(ask(i) for i in range(500)))

        # One client for every read (a cluster client per read is slow to start).
        client = RedisCluster.from_url(settings.redis_cluster_url or "", socket_timeout=5)
        try:

            async def none_searching() -> list[Any]:
                rides = [
                    ride_codec.decode(await client.hget(key, "j"))
                    async for key in client.scan_iter(match="dispatch:ride:*", count=1000)
                ]
                assert len(rides) == 500
                left = [r for r in rides if r.status is RideStatus.SEARCHING]
                assert not left, f"{len(left)} still searching"
                return rides

            rides = await eventually(none_searching, timeout_s=60, interval_s=0.5, what="windows")
            assert {r.status for r in rides} <= {RideStatus.OFFERED, RideStatus.NO_DRIVER}
            active = [r for r in rides if r.status in ACTIVE]
            per_driver = Counter(r.driver_id for r in active)
            assert max(per_driver.values()) == 1  # no driver in two active rides
            assert len(active) >= 45  # nearly every driver got a ride
            for ride in active:
                rec = await client.hgetall(f"dispatch:driver:{{{ride.driver_id}}}")
                assert (rec[b"ride"].decode(), int(rec[b"fence"])) == (ride.id, ride.fence)
        finally:
            await client.aclose()


async def test_ten_concurrent_requests_with_one_key_make_one_searching_ride() -> None:
    async with running(BATCHED) as inst:
        headers = {**inst.auth("rider", "u1"), "Idempotency-Key": "same-key"}
        body = orjson.dumps({"pickup": BERLIN})

        async def ask() -> tuple[int, bytes]:
            async with inst.session.post(f"{inst.url}/v1/rides", data=body, headers=headers) as r:
                return r.status, await r.read()

        answers = await asyncio.gather(*(ask() for _ in range(10)))
        assert {status for status, _ in answers} == {201}
        assert len({raw for _, raw in answers}) == 1  # byte for byte
        assert orjson.loads(answers[0][1])["status"] == "searching"
