"""One contract for every store, held against memory, a single Redis and a Redis Cluster."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import pytest

from dispatch.adapters.redis_client import driver_key
from dispatch.domain.drivers import DriverStatus
from dispatch.domain.errors import DriverBusy
from dispatch.domain.geo import LatLng
from dispatch.domain.rides import Offer, Ride, RideStatus, request
from dispatch.service_layer import deadlines
from dispatch.service_layer.notices import NoticeKind, RideNotice
from dispatch.service_layer.ops_view import OPS_TOPIC
from dispatch.service_layer.ports import ClaimState, Reservation

from .conftest import Backend

LEASE = 30_000


# -- drivers -------------------------------------------------------------------------------
async def test_a_driver_never_seen_is_available_with_fence_zero(backend: Backend) -> None:
    rec = await backend.deps.drivers.get("d1")
    assert (rec.status, rec.ride_id, rec.fence) == (DriverStatus.AVAILABLE, None, 0)


async def test_reserve_refuses_a_driver_without_a_fix(backend: Backend) -> None:
    now = backend.clock.now
    assert await backend.deps.drivers.reserve("d1", "r1", now, now + LEASE) is None


async def test_reserve_refuses_a_driver_silent_longer_than_the_ttl(backend: Backend) -> None:
    await backend.fix("d1")
    backend.clock.advance(backend.deps.index.ttl_ms + 1)
    now = backend.clock.now
    assert await backend.deps.drivers.reserve("d1", "r1", now, now + LEASE) is None
    assert (await backend.deps.drivers.get("d1")).status is DriverStatus.AVAILABLE


async def test_reserve_takes_a_fresh_driver_once(backend: Backend) -> None:
    await backend.fix("d1")
    now = backend.clock.now
    rec = await backend.deps.drivers.reserve("d1", "r1", now, now + LEASE)
    assert rec is not None and rec.status is DriverStatus.RESERVED and rec.fence >= now * 1000
    assert await backend.deps.drivers.reserve("d1", "r2", now, now + LEASE) is None
    stored = await backend.deps.drivers.get("d1")
    assert (stored.status, stored.ride_id, stored.fence) == (DriverStatus.RESERVED, "r1", rec.fence)


async def test_concurrent_reservations_of_one_driver_have_one_winner(backend: Backend) -> None:
    await backend.fix("d1")
    now = backend.clock.now
    results = await asyncio.gather(
        *(backend.deps.drivers.reserve("d1", f"r{i}", now, now + LEASE) for i in range(30))
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert (await backend.deps.drivers.get("d1")).ride_id == winners[0].ride_id


async def test_reserve_many_reserves_each_as_reserve_would(backend: Backend) -> None:
    await backend.fix("d1")
    await backend.fix("d2")
    now = backend.clock.now
    asks = [
        Reservation("d1", "r1"),
        Reservation("d2", "r2"),
        Reservation("d1", "r3"),  # d1 again: the first ask has it
        Reservation("d3", "r4"),  # no fix
    ]
    got = await backend.deps.drivers.reserve_many(asks, now, now + LEASE)
    assert [None if r is None else r.ride_id for r in got] == ["r1", "r2", None, None]
    for rec in got[:2]:
        assert rec is not None
        stored = await backend.deps.drivers.get(rec.driver_id)
        assert (stored.status, stored.ride_id, stored.fence) == (
            DriverStatus.RESERVED,
            rec.ride_id,
            rec.fence,
        )
    assert await backend.deps.drivers.reserve_many([], now, now + LEASE) == []


async def test_confirm_and_release_need_the_current_ride_and_fence(backend: Backend) -> None:
    await backend.fix("d1")
    now = backend.clock.now
    rec = await backend.deps.drivers.reserve("d1", "r1", now, now + LEASE)
    assert rec is not None
    drivers = backend.deps.drivers
    assert not await drivers.confirm("d1", "r1", rec.fence + 1, now)
    assert not await drivers.confirm("d1", "r2", rec.fence, now)
    assert await drivers.confirm("d1", "r1", rec.fence, now)
    assert await drivers.confirm("d1", "r1", rec.fence, now)  # repeated: still yes
    assert (await drivers.get("d1")).status is DriverStatus.ON_RIDE
    assert not await drivers.release("d1", "r1", rec.fence - 1)
    assert not await drivers.release("d1", "r2", rec.fence)
    assert await drivers.release("d1", "r1", rec.fence)
    assert not await drivers.release("d1", "r1", rec.fence)
    free = await drivers.get("d1")
    assert (free.status, free.ride_id) == (DriverStatus.AVAILABLE, None)
    again = await drivers.reserve("d1", "r3", now, now + LEASE)
    assert again is not None and again.fence > rec.fence


async def test_confirm_fails_once_the_lease_ran_out(backend: Backend) -> None:
    await backend.fix("d1")
    now = backend.clock.now
    rec = await backend.deps.drivers.reserve("d1", "r1", now, now + 100)
    assert rec is not None
    assert not await backend.deps.drivers.confirm("d1", "r1", rec.fence, now + 100)


async def test_an_expired_lease_is_freed_or_reclaimed_with_a_new_fence(backend: Backend) -> None:
    drivers = backend.deps.drivers
    await backend.fix("d1")
    now = backend.clock.now
    old = await drivers.reserve("d1", "r1", now, now + 100)
    assert old is not None
    assert not await drivers.expire_lease("d1", now + 99)
    new = await drivers.reserve("d1", "r2", now + 100, now + LEASE)
    assert new is not None and new.fence > old.fence
    assert not await drivers.confirm("d1", "r1", old.fence, now + 100)
    assert not await drivers.release("d1", "r1", old.fence)
    assert not await drivers.expire_lease("d1", now + 200)
    assert await drivers.confirm("d1", "r2", new.fence, now + 200)
    assert not await drivers.expire_lease("d1", now + 10**9)  # riding: no lease


async def test_expire_lease_frees_an_orphaned_reservation(backend: Backend) -> None:
    await backend.fix("d1")
    now = backend.clock.now
    assert await backend.deps.drivers.reserve("d1", "r1", now, now + 100) is not None
    assert await backend.deps.drivers.expire_lease("d1", now + 100)
    assert (await backend.deps.drivers.get("d1")).status is DriverStatus.AVAILABLE


async def test_an_offline_driver_is_not_reserved(backend: Backend) -> None:
    await backend.fix("d1")
    now = backend.clock.now
    rec = await backend.deps.drivers.set_status("d1", DriverStatus.OFFLINE, now)
    assert rec.status is DriverStatus.OFFLINE
    assert await backend.deps.drivers.reserve("d1", "r1", now, now + LEASE) is None
    await backend.deps.drivers.set_status("d1", DriverStatus.AVAILABLE, now)
    assert await backend.deps.drivers.reserve("d1", "r1", now, now + LEASE) is not None


async def test_a_busy_driver_cannot_change_its_status(backend: Backend) -> None:
    await backend.fix("d1")
    now = backend.clock.now
    rec = await backend.deps.drivers.reserve("d1", "r1", now, now + LEASE)
    assert rec is not None
    with pytest.raises(DriverBusy):
        await backend.deps.drivers.set_status("d1", DriverStatus.OFFLINE, now)
    assert (await backend.deps.drivers.get("d1")).status is DriverStatus.RESERVED


# -- rides ---------------------------------------------------------------------------------
def a_ride(ride_id: str = "r_1", now: int = 0) -> Ride:
    offer = Offer("d1", 12345678901234, 321.5, 54, now + 15_000)
    return request(ride_id, "rider1", LatLng(52.5, 13.4), LatLng(52.6, 13.5), offer, now)


async def test_a_ride_is_stored_once_and_read_back_whole(backend: Backend) -> None:
    ride = a_ride(now=backend.clock.now)
    assert await backend.deps.rides.create(ride)
    assert await backend.deps.rides.get(ride.id) == ride
    assert not await backend.deps.rides.create(replace(ride, rider_id="rider2"))
    assert await backend.deps.rides.get(ride.id) == ride
    assert await backend.deps.rides.get("r_missing") is None


async def test_replace_writes_only_over_the_previous_version(backend: Backend) -> None:
    ride = a_ride(now=backend.clock.now)
    await backend.deps.rides.create(ride)
    accepted = replace(ride, status=RideStatus.ACCEPTED, version=2, declined=("d0",))
    assert await backend.deps.rides.replace(accepted)
    assert not await backend.deps.rides.replace(
        replace(ride, status=RideStatus.CANCELLED, version=2)
    )
    assert await backend.deps.rides.get(ride.id) == accepted
    assert not await backend.deps.rides.replace(replace(a_ride("r_other"), version=2))


async def test_rides_read_and_replaced_in_one_call_each_as_alone(backend: Backend) -> None:
    rides = backend.deps.rides
    r1, r2 = a_ride("r_1", now=backend.clock.now), a_ride("r_2", now=backend.clock.now)
    assert await rides.create(r1) and await rides.create(r2)
    assert await rides.get_many(["r_2", "r_missing", "r_1"]) == [r2, None, r1]
    assert await rides.get_many([]) == []
    new1 = replace(r1, status=RideStatus.ACCEPTED, version=2)
    stale2 = replace(r2, status=RideStatus.CANCELLED, version=3)  # skips a version
    assert await rides.replace_many([new1, stale2]) == [True, False]
    assert await rides.get_many(["r_1", "r_2"]) == [new1, r2]
    assert await rides.replace_many([]) == []


async def test_concurrent_replaces_of_one_version_have_one_winner(backend: Backend) -> None:
    ride = a_ride(now=backend.clock.now)
    await backend.deps.rides.create(ride)
    tries = [replace(ride, version=2, attempts=i) for i in range(20)]
    results = await asyncio.gather(*(backend.deps.rides.replace(t) for t in tries))
    assert sum(results) == 1


# -- riders' active rides ------------------------------------------------------------------
async def test_a_rider_counts_rides_up_to_the_cap_and_a_drop_frees_a_place(
    backend: Backend,
) -> None:
    riders, now = backend.deps.active_rides, backend.clock.now
    assert await riders.hold("u1", "r1", now, 2) == []
    assert await riders.hold("u1", "r2", now + 5, 2) == []
    assert await riders.hold("u1", "r1", now + 9, 2) == []  # counted before: still yes
    full = await riders.hold("u1", "r3", now + 9, 2)
    assert sorted((h.ride_id, h.held_at) for h in full) == [("r1", now), ("r2", now + 5)]
    assert await riders.hold("u2", "r3", now, 2) == []  # riders are counted apart
    await riders.drop("u1", "r1")
    await riders.drop("u1", "r1")  # dropping twice changes nothing
    assert await riders.hold("u1", "r3", now, 2) == []
    assert [h.ride_id for h in await riders.hold("u1", "r4", now, 2)] != []


async def test_concurrent_holds_never_pass_the_cap(backend: Backend) -> None:
    riders, now = backend.deps.active_rides, backend.clock.now
    results = await asyncio.gather(*(riders.hold("u1", f"r{i}", now, 3) for i in range(20)))
    assert sum(1 for r in results if r == []) == 3


# -- idempotency ---------------------------------------------------------------------------
async def test_idempotency_key_lifecycle(backend: Backend) -> None:
    store = backend.deps.idempotency
    first = await store.begin("k1", "fp1", 30_000)
    assert first.state is ClaimState.NEW
    assert (await store.begin("k1", "fp1", 30_000)).state is ClaimState.PENDING
    assert (await store.begin("k1", "fp2", 30_000)).state is ClaimState.MISMATCH
    await store.finish("k1", "not-the-token", b"other", 60_000)
    assert (await store.begin("k1", "fp1", 30_000)).state is ClaimState.PENDING
    await store.finish("k1", first.token, b'{"id":"r_1"}', 60_000)
    done = await store.begin("k1", "fp1", 30_000)
    assert (done.state, done.payload) == (ClaimState.DONE, b'{"id":"r_1"}')
    assert (await store.begin("k1", "fp2", 30_000)).state is ClaimState.MISMATCH
    await store.abandon("k1", first.token)  # finished: abandoning changes nothing
    assert (await store.begin("k1", "fp1", 30_000)).state is ClaimState.DONE


async def test_an_abandoned_key_can_be_claimed_again(backend: Backend) -> None:
    store = backend.deps.idempotency
    first = await store.begin("k2", "fp1", 30_000)
    await store.abandon("k2", "wrong-token")
    assert (await store.begin("k2", "fp1", 30_000)).state is ClaimState.PENDING
    await store.abandon("k2", first.token)
    assert (await store.begin("k2", "fp2", 30_000)).state is ClaimState.NEW


async def test_a_finished_key_is_forgotten_only_with_its_own_answer(backend: Backend) -> None:
    store = backend.deps.idempotency
    claim = await store.begin("k4", "fp", 30_000)
    await store.forget("k4", b"")  # unfinished: nothing to forget
    assert (await store.begin("k4", "fp", 30_000)).state is ClaimState.PENDING
    await store.finish("k4", claim.token, b"answer", 60_000)
    await store.forget("k4", b"another answer")
    assert (await store.begin("k4", "fp", 30_000)).state is ClaimState.DONE
    await store.forget("k4", b"answer")
    assert (await store.begin("k4", "fp", 30_000)).state is ClaimState.NEW


async def test_concurrent_first_claims_have_one_winner(backend: Backend) -> None:
    claims = await asyncio.gather(
        *(backend.deps.idempotency.begin("k3", "fp", 30_000) for _ in range(20))
    )
    assert [c.state for c in claims].count(ClaimState.NEW) == 1


# -- timers --------------------------------------------------------------------------------
async def test_timers_fire_when_due_and_come_back_if_not_done(backend: Backend) -> None:
    q = backend.deps.deadlines
    now = backend.clock.now
    await q.schedule("r:a", now + 1_000)
    await q.schedule("r:b", now + 5_000)
    assert await q.claim(now + 999, 10, 5_000) == []
    [claimed] = await q.claim(now + 1_000, 10, 5_000)
    assert claimed.item == "r:a" and claimed.score == now + 6_000
    assert await q.claim(now + 1_001, 10, 5_000) == []  # held by its claimer
    again = await q.claim(now + 6_000, 10, 5_000)  # the claimer never finished
    assert sorted(c.item for c in again) == ["r:a", "r:b"]
    for c in again:
        await q.done(c)
    assert await q.claim(now + 10**6, 10, 5_000) == []


async def test_timers_scheduled_in_one_call_fire_as_if_set_alone(backend: Backend) -> None:
    q = backend.deps.deadlines
    now = backend.clock.now
    await q.schedule_many({f"r:{i}": now + 1_000 * (i % 2) for i in range(20)})
    await q.schedule_many({})
    early = await q.claim(now, 100, 5_000)
    assert sorted(c.item for c in early) == sorted(f"r:{i}" for i in range(0, 20, 2))
    late = await q.claim(now + 1_000, 100, 5_000)
    assert sorted(c.item for c in late) == sorted(f"r:{i}" for i in range(1, 20, 2))


async def test_timers_kept_beside_another_fire_and_end_where_they_are(backend: Backend) -> None:
    """Items kept beside another (a new ride's lease check beside its offer timer) are in
    its shard whatever their names, fire as if set alone, and are done or due again
    where they are: never left behind, never fired twice."""
    q = backend.deps.deadlines
    now = backend.clock.now
    items = ["r:x", *(f"l:d{i}" for i in range(20))]  # names spread over every shard
    await q.schedule_many({item: now for item in items}, beside="r:x")
    claimed = await q.claim(now, 800, 5_000)
    assert sorted(c.item for c in claimed) == sorted(items)
    if backend.name != "memory":
        assert len({c.shard for c in claimed}) == 1  # one shard: one ZADD
    for c in claimed[:10]:
        await q.again(c, now + 1_000)
    for c in claimed[10:]:
        await q.done(c)
    later = await q.claim(now + 1_000, 800, 5_000)
    assert sorted(c.item for c in later) == sorted(c.item for c in claimed[:10])
    for c in later:
        await q.done(c)
    assert await q.claim(now + 10**6, 800, 5_000) == []
    # The item they were kept beside is where its name puts it: a cancel reaches it.
    await q.schedule_many({"r:y": now, "l:d0": now}, beside="r:y")
    await q.cancel("r:y")
    assert [c.item for c in await q.claim(now, 800, 5_000)] == ["l:d0"]


async def test_timers_kept_near_a_driver_share_its_node_and_are_cancelled_given_it(
    backend: Backend,
) -> None:
    """A new ride's timers kept near its driver (on a cluster: a shard on the master of
    the driver's keys, so one write with the reservation) fire as if set alone, are
    done or due again where they are, and a cancel given the driver finds the offer's."""
    q = backend.deps.deadlines
    now = backend.clock.now
    for d in (f"d{i}" for i in range(12)):  # drivers on every master
        await q.schedule_many({f"r:{d}": now, f"l:{d}": now}, f"r:{d}", True, near=d)
        claimed = await q.claim(now, 800, 5_000)
        assert sorted(c.item for c in claimed) == sorted([f"r:{d}", f"l:{d}"])
        if backend.name == "cluster":
            scripts = q._scripts  # type: ignore[attr-defined]
            [shard] = {c.shard for c in claimed}
            assert scripts.node(shard).name == scripts.node(driver_key(d)).name
        for c in claimed:
            await q.again(c, now + 1_000)
        await q.cancel(f"r:{d}", near=d)
        [left] = await q.claim(now + 1_000, 800, 5_000)
        assert left.item == f"l:{d}"
        await q.done(left)
    assert await q.claim(now + 10**6, 800, 5_000) == []


async def test_a_timer_set_again_by_name_loses_only_its_copy_near_a_driver(
    backend: Backend,
) -> None:
    """An offer passed to the next driver is timed again by its name; the copy kept near
    the first driver goes alone (cancel with by_name=False), the new time stays."""
    q = backend.deps.deadlines
    now = backend.clock.now
    for d in (f"d{i}" for i in range(12)):
        await q.schedule_many({"r:x": now}, "r:x", near=d)
        await q.schedule("r:x", now + 1_000)
        await q.cancel("r:x", d, by_name=False)
        assert await q.claim(now, 800, 5_000) == []
        [again] = await q.claim(now + 1_000, 800, 5_000)
        assert again.item == "r:x"
        await q.done(again)


async def test_timers_kept_near_a_driver_are_never_put_off_either(backend: Backend) -> None:
    q = backend.deps.deadlines
    now = backend.clock.now
    await q.schedule_many({"l:d": now + 1_000}, keep_earlier=True, near="d")
    for later in range(3):
        await q.schedule_many({"l:d": now + 2_000 + later}, keep_earlier=True, near="d")
    [first] = await q.claim(now + 1_000, 100, 60_000)
    assert first.item == "l:d"


async def test_timers_kept_earlier_are_never_put_off(backend: Backend) -> None:
    """A refused reservation's lease check must not postpone the one already due (an
    orphaned reservation's): with keep_earlier an item keeps an earlier time, and takes
    a time when it had none or an earlier one."""
    q = backend.deps.deadlines
    now = backend.clock.now
    await q.schedule("l:d", now + 1_000)
    for later in range(5):  # refused tries, each due later
        await q.schedule_many({"l:d": now + 2_000 + later}, keep_earlier=True)
    await q.schedule_many({"l:new": now + 3_000}, keep_earlier=True)
    await q.schedule_many({"l:new": now + 2_500}, keep_earlier=True)
    [first] = await q.claim(now + 1_000, 100, 60_000)
    assert first.item == "l:d"
    [second] = await q.claim(now + 2_500, 100, 60_000)
    assert second.item == "l:new"
    await q.schedule("l:e", now + 100)
    await q.schedule_many({"l:e": now + 20_000})  # without it, a later time is taken
    assert await q.claim(now + 19_999, 100, 60_000) == []


async def test_a_sweep_handles_an_item_claimed_from_two_shards_once(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A driver's lease check kept beside two rides' offer timers sits in two shards (on
    Redis): one sweep handles it once, and no copy is left to fire again."""
    q = backend.deps.deadlines
    now = backend.clock.now
    await q.schedule("l:d0", now)  # in its name's shard
    await q.schedule_many({"r:x": now, "l:d0": now}, beside="r:x")  # and r:x's
    handled: list[str] = []

    async def handle(_deps: object, item: str) -> None:
        handled.append(item)

    monkeypatch.setattr(deadlines, "handle", handle)
    assert await deadlines.sweep_once(backend.deps) == (2 if backend.name == "memory" else 3)
    assert sorted(handled) == ["l:d0", "r:x"]
    assert await q.claim(now + 10**6, 100, 5_000) == []


async def test_a_timer_rescheduled_after_its_claim_survives_done(backend: Backend) -> None:
    q = backend.deps.deadlines
    now = backend.clock.now
    await q.schedule("r:a", now)
    [claimed] = await q.claim(now, 10, 5_000)
    await q.schedule("r:a", now + 20_000)
    await q.done(claimed)
    [later] = await q.claim(now + 20_000, 10, 5_000)
    assert later.item == "r:a"


async def test_a_cancelled_timer_never_fires(backend: Backend) -> None:
    q = backend.deps.deadlines
    await q.schedule("l:d1", backend.clock.now)
    await q.cancel("l:d1")
    await q.cancel("l:never-scheduled")
    assert await q.claim(backend.clock.now + 10**6, 10, 5_000) == []


async def test_concurrent_claims_hand_each_item_to_one_claimer(backend: Backend) -> None:
    q = backend.deps.deadlines
    now = backend.clock.now
    for i in range(40):
        await q.schedule(f"r:{i}", now)
    batches = await asyncio.gather(*(q.claim(now, 64, 5_000) for _ in range(5)))
    items = [c.item for batch in batches for c in batch]
    assert sorted(items) == sorted(f"r:{i}" for i in range(40))


# -- notifier ------------------------------------------------------------------------------
async def test_notifications_reach_subscribers_of_their_topic_only(backend: Backend) -> None:
    await backend.notifier_ready()
    n = backend.deps.notifier
    offered = request("r1", "u1", LatLng(52.5, 13.4), None, Offer("d1", 7, 10.0, 5, 99), 1)
    offer, update = RideNotice(NoticeKind.OFFER, offered), RideNotice(NoticeKind.RIDE, offered)
    nobody = RideNotice(NoticeKind.LEFT, offered)
    async with n.subscribe("driver:d1") as mine, n.subscribe("driver:d2") as other:
        await n.publish("driver:d1", offer)
        await n.publish("driver:d2", update)
        assert await asyncio.wait_for(mine.get(), 5) == offer  # the ride as stored, whole
        assert await asyncio.wait_for(other.get(), 5) == update
        await n.publish("driver:d3", nobody)
        await n.publish("driver:d1", update)
        assert await asyncio.wait_for(mine.get(), 5) == update


async def test_notifications_published_together_reach_each_topic_in_order(
    backend: Backend,
) -> None:
    await backend.notifier_ready()
    n = backend.deps.notifier
    rides = [request(f"r{i}", "u1", LatLng(52.5, 13.4), None, None, i + 1) for i in range(3)]
    notices = [RideNotice(NoticeKind.RIDE, r) for r in rides]
    async with (
        n.subscribe("driver:d1") as d1,
        n.subscribe("driver:d2") as d2,
        n.subscribe(OPS_TOPIC) as ops,
    ):
        await n.publish_many(
            [
                ("driver:d1", notices[0]),
                ("driver:d9", notices[1]),  # nobody listens
                ("driver:d2", notices[2]),
                ("driver:d1", notices[1]),
            ]
        )
        await n.publish_many([])
        assert await asyncio.wait_for(d1.get(), 5) == notices[0]
        assert await asyncio.wait_for(d1.get(), 5) == notices[1]
        assert await asyncio.wait_for(d2.get(), 5) == notices[2]
        # The ops channel's listener starts in the background: published until heard.
        for _ in range(100):
            await n.publish_many([(OPS_TOPIC, notices[0])])
            with contextlib.suppress(TimeoutError):
                assert await asyncio.wait_for(ops.get(), 0.1) == notices[0]
                break
        else:
            raise AssertionError("the ops notice never arrived")
