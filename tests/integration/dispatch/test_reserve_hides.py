"""A reservation that also takes the driver out of the index's search (reserve(hide=True),
then hidden()), and a release or an expired lease that brings it back (show=True): on
Redis the index's own record of the driver changes in the same script as the driver's;
held against memory, a single Redis and a Redis Cluster."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from dispatch.adapters.redis_drivers import RedisDriverStore
from dispatch.domain.drivers import DriverStatus
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.service_layer.cleanup import CleanupBudget
from dispatch.service_layer.reservations import find_offer, release_driver
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from dispatch.service_layer.timers import LeaseCheck, OfferTimeout
from geoindex import BackendUnavailable

from .conftest import Backend

LEASE = 30_000
HERE = (52.52, 13.40)


async def found(backend: Backend) -> list[str]:
    return [n.driver_id for n in await backend.deps.index.nearest(*HERE, 5, 1000)]


async def test_a_hiding_reservation_leaves_the_search_once_hidden(backend: Backend) -> None:
    await backend.fix("d1")
    now = backend.clock.now
    drivers = backend.deps.drivers
    rec = await drivers.reserve("d1", "r1", now, now + LEASE, hide=True)
    assert rec is not None and rec.status is DriverStatus.RESERVED
    await drivers.hidden("d1", rec.fence)
    assert await found(backend) == []
    state = await backend.deps.index.get("d1")
    assert state is not None and not state.available
    # and released, it is back: as release_driver always did
    assert await release_driver(backend.deps, "d1", "r1", rec.fence)
    assert await found(backend) == ["d1"]
    # a later fix keeps it in the search (the index's record says available again)
    backend.clock.advance(1000)
    await backend.fix("d1")
    assert await found(backend) == ["d1"]


async def test_a_refused_hiding_reservation_changes_nothing_in_the_index(
    backend: Backend,
) -> None:
    await backend.fix("d1")
    now = backend.clock.now
    drivers = backend.deps.drivers
    first = await drivers.reserve("d1", "r1", now, now + LEASE)
    assert first is not None  # held without hiding: still in the search
    assert await drivers.reserve("d1", "r2", now, now + LEASE, hide=True) is None
    assert await found(backend) == ["d1"]
    state = await backend.deps.index.get("d1")
    assert state is not None and state.available


@pytest.mark.redis
async def test_redis_the_index_record_changes_with_the_reservation(backend: Backend) -> None:
    """One script: before hidden() the index's own record already says busy, with a newer
    version, and a fix arriving then keeps the driver out of the region's search."""
    if backend.name == "memory":
        pytest.skip("one step in memory")
    await backend.fix("d1")
    drivers = backend.deps.drivers
    assert isinstance(drivers, RedisDriverStore)
    index: Any = drivers._index
    raw = index._redis
    before = await raw.hmget(index.driver_key("d1"), "avail", "ver")
    now = backend.clock.now
    rec = await drivers.reserve("d1", "r1", now, now + LEASE, hide=True)
    assert rec is not None
    after = await raw.hmget(index.driver_key("d1"), "avail", "ver")
    assert after[0] == b"0" and int(after[1]) > int(before[1])
    # a fix between the reservation and hidden(): the region takes the busy flag from it
    backend.clock.advance(100)
    await backend.fix("d1")
    assert await found(backend) == []
    await drivers.hidden("d1", rec.fence)  # an older version: changes nothing after it
    assert await found(backend) == []


@pytest.mark.redis
async def test_redis_a_resent_call_is_hidden_all_the_same(backend: Backend) -> None:
    """A call re-sent after a lost reply gets the fence alone (the first call made the
    index's change): hidden() then makes the whole change itself."""
    if backend.name == "memory":
        pytest.skip("no re-sent calls in memory")
    await backend.fix("d1")
    drivers = backend.deps.drivers
    assert isinstance(drivers, RedisDriverStore)
    now = backend.clock.now
    rec = await drivers.reserve("d1", "r1", now, now + LEASE, hide=True)
    assert rec is not None
    drivers._hiding.clear()  # as if this reply were the re-sent call's
    # the index record was changed by the script; the region not yet
    assert await found(backend) == ["d1"]
    await drivers.hidden("d1", rec.fence)
    assert await found(backend) == []


class LostReply:
    """The driver store, but a reservation's reply is lost after it was made."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def reserve(self, *args: Any, **kwargs: Any) -> Any:
        await self._inner.reserve(*args, **kwargs)
        raise BackendUnavailable("reply lost")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_a_lost_reservation_reply_leaves_the_lease_timer(backend: Backend) -> None:
    """The reservation (and with it the driver's absence from search) may have been made:
    the lease timer gives the driver back once the lease runs out."""
    await backend.fix("d1")
    deps = replace(backend.deps, drivers=LostReply(backend.deps.drivers))
    now = backend.clock.now
    with pytest.raises(BackendUnavailable):
        await find_offer(deps, "r1", LatLng(*HERE), (), now, CleanupBudget())
    assert (await backend.deps.drivers.get("d1")).status is DriverStatus.RESERVED
    due = now + backend.deps.lease_ms - 5_000
    claimed = await backend.deps.deadlines.claim(due, 100, 10_000)
    assert LeaseCheck("d1").key in [c.item for c in claimed]


async def test_a_release_brings_the_driver_back_to_the_search(backend: Backend) -> None:
    await backend.fix("d1")
    now = backend.clock.now
    drivers = backend.deps.drivers
    rec = await drivers.reserve("d1", "r1", now, now + LEASE, hide=True)
    assert rec is not None
    await drivers.hidden("d1", rec.fence)
    assert not await drivers.release("d1", "r1", rec.fence + 1, show=True)  # a stale token
    assert await found(backend) == []
    assert await drivers.release("d1", "r1", rec.fence, show=True)
    assert await found(backend) == ["d1"]
    state = await backend.deps.index.get("d1")
    assert state is not None and state.available


async def test_an_expired_lease_brings_the_driver_back_to_the_search(backend: Backend) -> None:
    await backend.fix("d1")
    now = backend.clock.now
    drivers = backend.deps.drivers
    rec = await drivers.reserve("d1", "r1", now, now + 100, hide=True)
    assert rec is not None
    await drivers.hidden("d1", rec.fence)
    assert not await drivers.expire_lease("d1", now + 50, show=True)  # still held
    assert await found(backend) == []
    assert await drivers.expire_lease("d1", now + 100, show=True)
    assert await found(backend) == ["d1"]


@pytest.mark.redis
async def test_redis_a_resent_release_brings_the_driver_back_all_the_same(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release sent again after a lost reply is answered 1 from its call id (the first
    call made the index's change): the store then makes the whole change itself."""
    if backend.name == "memory":
        pytest.skip("no re-sent calls in memory")
    from dispatch.adapters import redis_drivers

    await backend.fix("d1")
    now = backend.clock.now
    drivers = backend.deps.drivers
    rec = await drivers.reserve("d1", "r1", now, now + LEASE, hide=True)
    assert rec is not None
    await drivers.hidden("d1", rec.fence)
    monkeypatch.setattr(redis_drivers, "call_id", lambda: "the-same-call")
    assert await drivers.release("d1", "r1", rec.fence, show=True)
    await backend.deps.index.set_available("d1", False)  # the first call's effect undone
    assert await found(backend) == []
    assert await drivers.release("d1", "r1", rec.fence, show=True)  # the re-sent call
    assert await found(backend) == ["d1"]


async def test_a_new_ride_hides_its_driver_with_its_store_and_times_its_offer(
    backend: Backend,
) -> None:
    """A new ride's offer timer and its driver's lease check go with the reservation (one
    shard); the driver's hiding from the search is finished with the ride's store."""
    await backend.fix("d1")
    rider = Principal(Role.RIDER, "u1")
    ride = await request_ride(backend.deps, rider, new_ride_id("u1", None), LatLng(*HERE), None)
    assert ride.driver_id == "d1" and ride.offer_expires_at is not None
    assert await backend.deps.rides.get(ride.id) == ride
    assert await found(backend) == []
    state = await backend.deps.index.get("d1")
    assert state is not None and not state.available
    lease_due = backend.clock.now + backend.deps.lease_ms - 5_000
    claimed = await backend.deps.deadlines.claim(lease_due, 800, 60_000)
    assert sorted(c.item for c in claimed) == sorted([OfferTimeout(ride.id).key, "l:d1"])
    assert len({c.shard for c in claimed}) == 1


class FailingStore:
    """A ride store whose create fails (its reply lost, or the node down)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def create(self, *args: Any, **kwargs: Any) -> bool:
        raise BackendUnavailable("store failed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_a_new_ride_whose_store_fails_gives_its_driver_back_to_the_search(
    backend: Backend,
) -> None:
    await backend.fix("d1")
    deps = replace(backend.deps, rides=FailingStore(backend.deps.rides))
    rider = Principal(Role.RIDER, "u1")
    with pytest.raises(BackendUnavailable):
        await request_ride(deps, rider, new_ride_id("u1", None), LatLng(*HERE), None)
    assert (await backend.deps.drivers.get("d1")).status is DriverStatus.AVAILABLE
    assert await found(backend) == ["d1"]
    state = await backend.deps.index.get("d1")
    assert state is not None and state.available
