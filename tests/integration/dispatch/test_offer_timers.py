"""A new ride's offer timer, kept near its driver (on a cluster: in a timer shard on the
driver's master, set in the reservation's own write): an offer that ends takes it away,
wherever it is, and a copy missed (an older instance's cancel, a slot moved in between)
fires into a handler that does nothing. Held against memory, a single Redis and a Redis
Cluster."""

from __future__ import annotations

from typing import Any

import pytest

from dispatch.adapters.redis_client import driver_key
from dispatch.adapters.redis_deadlines import RedisDeadlineQueue, _shard_key
from dispatch.adapters.redis_drivers import RESERVE
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import Ride, RideStatus
from dispatch.service_layer import deadlines, ride_steps
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from dispatch.service_layer.timers import OfferTimeout
from geoindex.redis_pipeline import Pipelined

from .conftest import Backend

HERE = (52.52, 13.40)
RIDER = Principal(Role.RIDER, "u1")


def _apart_id(backend: Backend, driver_id: str) -> str:
    """A ride id whose offer timer's name puts it in another shard than the one kept near
    the driver (on a cluster): a cancel by the name alone would miss it there."""
    q = backend.deps.deadlines
    for i in range(100):
        ride_id = new_ride_id("u1", f"key{i}")
        if not isinstance(q, RedisDeadlineQueue):
            return ride_id
        near = q.near_shard(driver_id)
        if near is None or near != _shard_key(OfferTimeout(ride_id).key):
            return ride_id
    raise AssertionError("some id is apart")


async def _offered(backend: Backend) -> Ride:
    """A new ride offered to d1, with d2 farther away."""
    await backend.fix("d1")
    await backend.fix("d2", lat=HERE[0] + 0.002)
    ride_id = _apart_id(backend, "d1")
    ride = await request_ride(backend.deps, RIDER, ride_id, LatLng(*HERE), None, fresh_id=True)
    assert ride.driver_id == "d1" and ride.offer_expires_at is not None
    return ride


async def _due_timers(backend: Backend, at_ms: int) -> list[str]:
    claimed = await backend.deps.deadlines.claim(at_ms, 800, 60_000)
    return sorted(c.item for c in claimed)


async def test_an_accepted_offer_leaves_no_offer_timer_behind(backend: Backend) -> None:
    ride = await _offered(backend)
    await ride_steps.accept(backend.deps, Principal(Role.DRIVER, "d1"), ride.id)
    assert await _due_timers(backend, backend.clock.now + 10**7) == ["l:d1"]


async def test_a_declined_offer_keeps_one_offer_timer_at_the_next_offers_time(
    backend: Backend,
) -> None:
    ride = await _offered(backend)
    assert ride.offer_expires_at is not None
    backend.clock.advance(1_000)
    again = await ride_steps.decline(backend.deps, Principal(Role.DRIVER, "d1"), ride.id)
    assert again.driver_id == "d2" and again.offer_expires_at == ride.offer_expires_at + 1_000
    timer = OfferTimeout(ride.id).key
    # Nothing left at the first offer's time (the lease checks come later)...
    assert await _due_timers(backend, ride.offer_expires_at) == []
    # ... and one timer, at the second's.
    assert await _due_timers(backend, again.offer_expires_at) == [timer]


async def test_an_offer_timeout_for_a_ride_no_longer_offered_does_nothing(
    backend: Backend,
) -> None:
    """A copy of the offer's timer a cancel missed (an older instance's cancel by the name
    alone, a slot moved between schedule and cancel) fires: into nothing."""
    ride = await _offered(backend)
    timer = OfferTimeout(ride.id).key
    backend.clock.advance(1_000)
    moved = await ride_steps.decline(backend.deps, Principal(Role.DRIVER, "d1"), ride.id)
    assert moved.offer_expires_at is not None
    # The ride is offered to d2, whose offer has not run out: the copy waits for it.
    assert await deadlines.handle(backend.deps, timer) == moved.offer_expires_at
    assert await backend.deps.rides.get(ride.id) == moved
    accepted = await ride_steps.accept(backend.deps, Principal(Role.DRIVER, "d2"), ride.id)
    backend.clock.advance(backend.deps.policy.offer_timeout_ms)
    assert await deadlines.handle(backend.deps, timer) is None
    assert await backend.deps.rides.get(ride.id) == accepted
    rec = await backend.deps.drivers.get("d2")
    assert (rec.ride_id, rec.fence) == (ride.id, accepted.fence)
    assert accepted.status is RideStatus.ACCEPTED


async def test_a_new_rides_timers_go_in_its_reservations_write_on_a_cluster(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a timer shard on every master (3 masters, 8 shards), the `ZADD` of a new
    ride's timers is one more command of the driver's reservation's write, whichever
    master holds the driver."""
    if backend.name != "cluster":
        pytest.skip("one node is one write anyway")
    writes: list[bytes] = []
    send = Pipelined._send

    async def recorded(self: Pipelined, node: Any, indices: Any, packed: Any, replies: Any) -> None:
        writes.append(b"".join(packed))
        await send(self, node, indices, packed, replies)

    monkeypatch.setattr(Pipelined, "_send", recorded)
    reserve = RESERVE.sha.encode()
    q = backend.deps.deadlines
    assert isinstance(q, RedisDeadlineQueue)
    masters = set()
    for i in range(12):  # each ride reserves the one free driver, new each time
        driver_id = f"n{i}"
        await backend.fix(driver_id)
        writes.clear()
        rider = Principal(Role.RIDER, f"u{i}")
        ride = await request_ride(
            backend.deps, rider, new_ride_id(f"u{i}", None), LatLng(*HERE), None
        )
        assert ride.driver_id == driver_id
        [write] = [w for w in writes if reserve in w]
        assert b"ZADD" in write and OfferTimeout(ride.id).key.encode() in write
        assert not any(b"ZADD" in w for w in writes if w is not write)
        masters.add(q._scripts.node(driver_key(driver_id)).name)  # type: ignore[attr-defined]
    assert len(masters) == 3
