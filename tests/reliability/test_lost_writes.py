"""Writes a Redis failover can lose (replication is asynchronous: the dead master may have
acknowledged writes its replica never saw), replayed deterministically on a single Redis
by putting a key back as the promoted replica would have it. None may end in a double
booking (invariant 1), nor in an answer about a ride that is gone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatch.adapters.durable import DurabilityTimeout
from dispatch.bootstrap import bootstrap
from dispatch.domain.drivers import DriverStatus
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import Ride, RideStatus
from dispatch.service_layer import drivers as driver_cases
from dispatch.service_layer import ride_steps
from dispatch.service_layer.deadlines import sweep_once
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.ride_requests import new_ride_id, request_ride, request_ride_once
from dispatch.service_layer.timers import OfferTimeout
from dispatch.settings import Settings
from geoindex import Position
from tests.fake_clock import FakeClock

from .conftest import BERLIN, Client
from .redis_state import double_assignments, load_state
from .replica_pair import ReplicaPair

pytestmark = [pytest.mark.slow, pytest.mark.redis]
# The writes replayed are the immediate path's (a request reserves and offers at once).
IMMEDIATE = 0
HERE = LatLng(52.52, 13.405)
D1 = Principal(Role.DRIVER, "d1")


@dataclass
class Replay:
    """The service on one Redis with a hand-moved clock, and a raw client to play the
    failover with."""

    deps: Deps
    clock: FakeClock
    raw: Any

    async def fix(self, driver_id: str, north: float, seq: int) -> None:
        lat = 52.5201 + north
        await self.deps.index.upsert([Position(driver_id, lat, 13.405, self.clock.now, seq)])

    async def ask(self, rider: str) -> Ride:
        principal = Principal(Role.RIDER, rider)
        return await request_ride(self.deps, principal, new_ride_id(rider, None), HERE, None)

    async def as_the_replica_had_it(self, key: str, kept: dict[bytes, bytes]) -> None:
        """The failover: the promoted replica holds `key` as it was at `kept`."""
        await self.raw.delete(key)
        await self.raw.hset(key, mapping=kept)

    async def timers_fire(self, pinging: dict[str, float]) -> None:
        """A whole lease passes, in quarters; the drivers keep pinging; timers fire."""
        for _ in range(4):
            self.clock.advance(self.deps.lease_ms // 4 + 1)
            for driver_id, north in pinging.items():
                await self.fix(driver_id, north, self.clock.now)
            while await sweep_once(self.deps):
                pass


@pytest.fixture
async def replay(redis_url: str) -> AsyncIterator[Replay]:
    raw = Redis.from_url(redis_url)
    clock = FakeClock()
    try:
        async with bootstrap(
            Settings(redis_url=redis_url, match_window_ms=IMMEDIATE), clock=clock
        ) as runtime:
            yield Replay(runtime.deps, clock, raw)
    finally:
        await raw.aclose()


async def test_a_lost_accept_on_the_drivers_key_never_frees_the_driver_for_another_ride(
    replay: Replay,
) -> None:
    deps = replay.deps
    await replay.fix("d1", 0, 1)
    first = await replay.ask("u1")
    reserved = await replay.raw.hgetall("dispatch:driver:{d1}")
    accepted = await ride_steps.accept(deps, D1, first.id)
    assert accepted.status is RideStatus.ACCEPTED
    # The ride's master kept the accept, the driver's master lost the confirm; the
    # driver's key is back to "reserved", under a lease that runs out.
    await replay.as_the_replica_had_it("dispatch:driver:{d1}", reserved)

    await replay.timers_fire({"d1": 0})
    second = await replay.ask("u2")
    assert second.driver_id != "d1"  # d1 is on the first ride still
    rides, drivers = await load_state(replay.raw)
    report = double_assignments(rides, drivers, replay.clock.now)
    assert report["drivers_in_two_active_rides"] == {}
    assert report["committed_rides_not_held_by_their_driver"] == []
    # And the first ride goes on to its end, freeing d1 then.
    for step in (ride_steps.arrive, ride_steps.start, ride_steps.complete):
        await step(deps, D1, first.id)
    assert (await deps.drivers.get("d1")).status.value == "available"


async def test_a_lost_release_after_the_ride_ended_does_not_strand_the_driver(
    replay: Replay,
) -> None:
    deps = replay.deps
    await replay.fix("d1", 0, 1)
    ride = await replay.ask("u1")
    await ride_steps.accept(deps, D1, ride.id)
    await ride_steps.arrive(deps, D1, ride.id)
    await ride_steps.start(deps, D1, ride.id)
    on_ride = await replay.raw.hgetall("dispatch:driver:{d1}")
    await ride_steps.complete(deps, D1, ride.id)
    # The failover kept the completed ride but lost the release on the driver's key.
    await replay.as_the_replica_had_it("dispatch:driver:{d1}", on_ride)
    # The driver, idle, says so: it is free again and can be dispatched.
    rec, _ = await driver_cases.set_status(deps, D1, "d1", DriverStatus.AVAILABLE)
    assert rec.status is DriverStatus.AVAILABLE
    replay.clock.advance(1_000)
    await replay.fix("d1", 0, 2)
    again = await replay.ask("u2")
    assert again.driver_id == "d1"


@pytest.mark.parametrize("timer_cancel", ["lost", "kept"])
async def test_a_lost_accept_on_the_ride_is_put_back_not_passed_on(
    replay: Replay, timer_cancel: str
) -> None:
    """The mirror case: the driver's key kept the accept (on_ride), the ride lost it and
    still says offered. The driver was told yes and is on the way; the ride must be
    accepted again, not handed to someone else: by the offer's timer if the timer's
    cancel was lost with the ride's write, else by the reservation's lease timer."""
    deps = replay.deps
    drivers = {"d1": 0.0, "d2": 1e-3}
    for d, north in drivers.items():
        await replay.fix(d, north, 1)
    ride = await replay.ask("u1")
    assert ride.driver_id == "d1" and ride.offer_expires_at is not None
    offered = await replay.raw.hgetall(f"dispatch:ride:{{{ride.id}}}")
    await ride_steps.accept(deps, D1, ride.id)
    await replay.as_the_replica_had_it(f"dispatch:ride:{{{ride.id}}}", offered)
    if timer_cancel == "lost":
        await deps.deadlines.schedule(OfferTimeout(ride.id).key, ride.offer_expires_at)

    await replay.timers_fire(drivers)  # both timers' times pass
    restored = await deps.rides.get(ride.id)
    assert restored is not None
    assert (restored.status, restored.driver_id, restored.fence) == (
        RideStatus.ACCEPTED, "d1", ride.fence,
    )  # fmt: skip
    rec = await deps.drivers.get("d1")
    assert (rec.status, rec.ride_id, rec.fence) == (DriverStatus.ON_RIDE, ride.id, ride.fence)
    assert (await deps.drivers.get("d2")).status is DriverStatus.AVAILABLE
    for step in (ride_steps.arrive, ride_steps.start, ride_steps.complete):
        await step(deps, D1, ride.id)
    assert (await deps.drivers.get("d1")).status is DriverStatus.AVAILABLE


async def test_a_lost_ride_whose_keyed_answer_survived_is_stored_again_on_retry(
    live: Client, redis_url: str
) -> None:
    """The ride and its Idempotency-Key's answer live on different masters; a failover can
    lose the ride alone. A retry with the key must not replay a 201 for a ride that is
    gone: the request runs again, under the same ride id, and is then replayed as usual."""
    raw = Redis.from_url(redis_url)
    try:
        await live.online("d1", BERLIN["lat"] + 1e-4, BERLIN["lng"])
        await live.online("d2", BERLIN["lat"] + 2e-4, BERLIN["lng"])
        ask = {"json": {"pickup": BERLIN}, "headers": {"Idempotency-Key": "k1"}}
        first = await live.call("POST", "/v1/rides", "rider:u1", **ask)
        assert first.status == 201 and first.body["driver_id"] == "d1"
        ride_id = first.body["id"]
        await raw.delete(f"dispatch:ride:{{{ride_id}}}")  # the failover lost the ride

        again = await live.call("POST", "/v1/rides", "rider:u1", **ask)
        assert again.status == 201, again.body
        # d1 is still held by the lost ride's reservation until its lease runs out.
        assert (again.body["id"], again.body["status"], again.body["driver_id"]) == (
            ride_id, "offered", "d2",
        )  # fmt: skip
        assert (await live.call("GET", f"/v1/rides/{ride_id}", "rider:u1")).status == 200
        replay = await live.call("POST", "/v1/rides", "rider:u1", **ask)
        assert replay.body == again.body
    finally:
        await raw.aclose()


@pytest.mark.parametrize("durable", ["off", "1:200"])
async def test_the_residual_case_a_reservation_and_its_confirm_lost_together(durable: str) -> None:
    """docs/reliability.md's residual case, on a real master and replica: the driver's
    master acknowledges the reservation, the confirm and the lease timer, then dies before
    its replica has any of them, while the ride's own master keeps the accepted ride.
    Without durable writes the ride says accepted by d1 while d1's key says free: d1 is
    booked for a second ride. With them nothing was acknowledged (503 durability_timeout
    at the reservation): the rider's retry on the promoted replica is matched afresh and
    the second ride goes to nobody else's driver."""
    clock = FakeClock()
    async with ReplicaPair() as pair:
        settings = Settings(
            redis_url=pair.master_url, durable_writes=durable, match_window_ms=IMMEDIATE
        )
        async with bootstrap(settings, clock=clock) as runtime:
            old = Replay(runtime.deps, clock, None)
            await old.fix("d1", 0, 1)
            await pair.wait_counted()  # the fix is on the replica, nothing after it
            await pair.cut_off()
            kept: dict[bytes, bytes] = {}
            if durable == "off":
                first = await old.ask("u1")
                told = await ride_steps.accept(runtime.deps, D1, first.id)
                assert told.status is RideStatus.ACCEPTED  # acknowledged, then lost
                async with Redis.from_url(pair.master_url) as master:
                    kept = await master.hgetall(f"dispatch:ride:{{{first.id}}}")
            else:
                with pytest.raises(DurabilityTimeout):
                    await old.ask("u1")
        pair.kill_master()
        raw = Redis.from_url(pair.replica_url)
        try:
            if kept:  # the ride's own master (another one, on a cluster) kept it
                await raw.hset(f"dispatch:ride:{{{first.id}}}", mapping=kept)
            async with bootstrap(
                Settings(redis_url=pair.replica_url, match_window_ms=IMMEDIATE), clock=clock
            ) as runtime:
                new = Replay(runtime.deps, clock, raw)
                if durable != "off":  # the rider, answered 503, asks again; d1 accepts
                    first = await new.ask("u1")
                    assert first.driver_id == "d1"
                    await ride_steps.accept(runtime.deps, D1, first.id)
                clock.advance(1_000)
                await new.fix("d1", 0, 2)
                second = await new.ask("u2")
                rides, drivers = await load_state(raw)
        finally:
            await raw.aclose()
    report = double_assignments(rides, drivers, clock.now)
    if durable == "off":
        # The gap: d1 was told it has ride 1 and is now offered ride 2.
        assert second.driver_id == "d1"
        assert report["drivers_in_two_active_rides"] != {}
    else:
        assert second.driver_id is None  # d1 is on ride 1; nobody else is near
        assert rides[first.id].status is RideStatus.ACCEPTED
        assert (drivers["d1"].status, drivers["d1"].ride) == ("on_ride", first.id)
        assert report["drivers_in_two_active_rides"] == {}
        assert report["committed_rides_not_held_by_their_driver"] == []


async def test_a_keyed_retry_after_a_durability_timeout_is_not_replayed_unreplicated() -> None:
    """The ride and its Idempotency-Key's answer are stored by one script; answered 503
    durability_timeout, both may be on the master alone. The rider's retry with the key
    finds the answer: it is replayed only once the ride is on a replica (here never, the
    replica being cut off), else a 201 could name a ride the failover then loses. (No
    driver near: the ride's own store is the first write that waits.)"""
    clock = FakeClock()
    rider = Principal(Role.RIDER, "u1")
    async with ReplicaPair() as pair:
        settings = Settings(
            redis_url=pair.master_url, durable_writes="1:200", match_window_ms=IMMEDIATE
        )
        async with bootstrap(settings, clock=clock) as runtime:
            await pair.wait_counted()
            await pair.cut_off()
            for _ in range(2):  # the first try and the retry alike
                with pytest.raises(DurabilityTimeout):
                    await request_ride_once(
                        runtime.deps, rider, HERE, None, "k1", lambda r: r.id.encode()
                    )
