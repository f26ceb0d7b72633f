"""What a ride request asks of its stores: the offer timer set once, a new ride's notices
only where someone can be listening, the Idempotency-Key touched only by a long request."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from dispatch.adapters.memory_idempotency import MemoryIdempotencyStore
from dispatch.domain.geo import LatLng
from dispatch.domain.rides import Ride, RideStatus
from dispatch.service_layer import idempotency, ride_steps
from dispatch.service_layer.notices import RideNotice, driver_topic, ride_topic
from dispatch.service_layer.ops_view import OPS_TOPIC
from dispatch.service_layer.ports import Answer, Claim, Holders
from dispatch.service_layer.ride_requests import new_ride_id, request_ride, request_ride_once
from dispatch.service_layer.timers import OfferTimeout

from .conftest import PICKUP, World, driver, rider

HERE = LatLng(*PICKUP)


async def _ask(world: World) -> Ride:
    return await request_ride(world.deps, rider("u1"), new_ride_id("u1", None), HERE, None)


def _record_schedules(world: World) -> list[tuple[str, int]]:
    """Every timer scheduled or cancelled (due -1), and "stored" once the ride is."""
    scheduled: list[tuple[str, int]] = []
    deadlines, rides = world.deps.deadlines, world.deps.rides
    schedule, cancel = deadlines.schedule, deadlines.cancel
    create = rides.create

    async def recording(item: str, due_ms: int) -> None:
        scheduled.append((item, due_ms))
        await schedule(item, due_ms)

    async def recording_many(
        due: Mapping[str, int],
        beside: str | None = None,
        keep_earlier: bool = False,
        near: str | None = None,
    ) -> None:
        for item, due_ms in due.items():  # not through schedule_many: it may call schedule
            scheduled.append((item, due_ms))
            await schedule(item, due_ms)

    async def cancelling(item: str, near: str | None = None, by_name: bool = True) -> None:
        scheduled.append((item, -1))
        await cancel(item, near, by_name)

    async def creating(ride: Ride, answer: Answer | None = None) -> bool:
        scheduled.append(("stored", 0))
        return await create(ride, answer)

    deadlines.schedule = recording  # type: ignore[method-assign]
    deadlines.schedule_many = recording_many  # type: ignore[method-assign]
    deadlines.cancel = cancelling  # type: ignore[method-assign]
    rides.create = creating  # type: ignore[method-assign]
    return scheduled


def _record_notices(world: World) -> list[list[str]]:
    batches: list[list[str]] = []
    publish_many = world.deps.notifier.publish_many

    async def recording(
        sends: Sequence[tuple[str, RideNotice]], holders: Holders | None = None
    ) -> None:
        batches.append([topic for topic, _ in sends])
        await publish_many(sends, holders)

    world.deps.notifier.publish_many = recording  # type: ignore[method-assign]
    return batches


async def test_an_offered_ride_sets_its_offer_timer_once_at_the_offers_expiry(
    world: World,
) -> None:
    await world.driver_at("d1", 200)
    scheduled = _record_schedules(world)
    ride = await request_ride(
        world.deps, rider("u1"), new_ride_id("u1", None), LatLng(*PICKUP), None
    )
    assert ride.status is RideStatus.OFFERED
    timers = [due for item, due in scheduled if item == OfferTimeout(ride.id).key]
    assert timers == [ride.offer_expires_at]
    # Before the ride is stored: should the request die after storing it, it still fires.
    assert scheduled.index((OfferTimeout(ride.id).key, timers[0])) < scheduled.index(("stored", 0))


async def test_a_ride_without_a_driver_sets_and_clears_no_offer_timer(world: World) -> None:
    scheduled = _record_schedules(world)
    ride = await request_ride(
        world.deps, rider("u1"), new_ride_id("u1", None), LatLng(*PICKUP), None
    )
    assert ride.status is RideStatus.NO_DRIVER
    assert scheduled == [("stored", 0)]


async def test_a_new_ride_tells_the_ops_map_and_its_driver_and_later_changes_its_rider(
    world: World,
) -> None:
    await world.driver_at("d1", 200)
    batches = _record_notices(world)
    ride = await request_ride(
        world.deps, rider("u1"), new_ride_id("u1", None), LatLng(*PICKUP), None
    )
    # Nobody can listen to a ride not yet stored: its own topic is not published to.
    assert batches == [[OPS_TOPIC, driver_topic("d1")]]
    await ride_steps.accept(world.deps, driver("d1"), ride.id)
    assert sorted(batches[-1]) == sorted([OPS_TOPIC, ride_topic(ride.id), driver_topic("d1")])


async def test_a_request_without_a_key_never_looks_for_an_earlier_try(world: World) -> None:
    await world.driver_at("d1", 200)
    await world.driver_at("d2", 300)
    looked_for: list[str] = []
    get = world.deps.rides.get

    async def recording(ride_id: str) -> Ride | None:
        looked_for.append(ride_id)
        return await get(ride_id)

    world.deps.rides.get = recording  # type: ignore[method-assign]
    await request_ride_once(world.deps, rider("u1"), HERE, None, None, lambda r: b"")
    assert looked_for == []  # a random id: nobody stored it before
    await request_ride_once(world.deps, rider("u2"), HERE, None, "key", lambda r: b"")
    assert looked_for == [new_ride_id("u2", "key")]  # a retry's ride may be stored


class _CountingStore(MemoryIdempotencyStore):
    def __init__(self) -> None:
        super().__init__(lambda: 0)
        self.touches = 0

    async def touch(self, key: str, token: str, lock_ms: int) -> None:
        self.touches += 1
        await super().touch(key, token, lock_ms)


async def test_a_request_longer_than_a_third_of_its_lock_keeps_touching_its_key() -> None:
    store = _CountingStore()

    async def slow(_claim: Claim) -> tuple[bytes, bool]:
        await asyncio.sleep(0.2)  # ten thirds of the lock below
        return b"done", False

    assert await idempotency.once(store, "k", "fp", slow, lock_ms=60) == b"done"
    assert store.touches >= 1


async def test_a_quick_request_never_touches_its_key() -> None:
    store = _CountingStore()

    async def quick(_claim: Claim) -> tuple[bytes, bool]:
        return b"done", False

    assert await idempotency.once(store, "k", "fp", quick, lock_ms=60) == b"done"
    await asyncio.sleep(0.1)  # past when a holder left running would have touched
    assert store.touches == 0
