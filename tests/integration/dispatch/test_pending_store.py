"""Batched matching's queue and lease on every backend, and a window solved on each."""

from __future__ import annotations

import asyncio

from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import RideStatus
from dispatch.service_layer.batching import window_round
from dispatch.service_layer.match_window import Batching, Pending
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from tests.integration.dispatch.conftest import Backend


def _b(backend: Backend) -> Batching:
    assert backend.deps.batching is not None
    return backend.deps.batching


async def test_the_queue_keeps_the_oldest_first_per_region(batched: Backend) -> None:
    store = _b(batched).store
    await store.add(7, "r2", 2_000)
    await store.add(7, "r1", 1_000)
    await store.add(9, "r3", 3_000)
    assert (await store.pending(7, 10)).entries == [Pending("r1", 1_000), Pending("r2", 2_000)]
    assert (await store.pending(7, 1)).entries == [Pending("r1", 1_000)]
    assert set(await store.regions(0)) >= {7, 9}
    await store.remove(7, ["r1"])
    assert (await store.pending(7, 10)).entries == [Pending("r2", 2_000)]


async def test_the_lease_is_one_holders_until_dropped(batched: Backend) -> None:
    store = _b(batched).store
    first = await store.take_lease(5, "a", 60_000)
    assert first is not None
    assert await store.take_lease(5, "a", 60_000) == first  # renewed, same fence
    assert await store.take_lease(5, "b", 60_000) is None
    await store.drop_lease(5, "a", first)
    second = await store.take_lease(5, "b", 60_000)
    assert second is not None and second > first


async def test_a_lapsed_lease_resumes_its_fence_only_if_no_one_took_it_since(
    batched: Backend,
) -> None:
    store = _b(batched).store

    async def lapse() -> None:  # Redis expires in real time, the embedded one by the clock
        await asyncio.sleep(0.08)
        batched.clock.advance(80)

    first = await store.take_lease(5, "a", 50)
    assert first is not None
    await lapse()
    # A round slower than its lease: nobody held the region meanwhile, so the holder's
    # work under `first` is still fenced and it gets that very fence back.
    assert await store.take_lease(5, "a", 50, first) == first
    await lapse()
    taken = await store.take_lease(5, "b", 50)
    assert taken is not None and taken > first
    assert await store.take_lease(5, "a", 50, first) is None  # b's lease lives
    await lapse()
    again = await store.take_lease(5, "a", 50, first)  # b held it since: a new fence
    assert again is not None and again > taken


async def test_a_window_offers_the_searching_rides(batched: Backend) -> None:
    await batched.fix("d1", 52.521, 13.40)
    await batched.fix("d2", 52.519, 13.40)
    ids = []
    for who in ("u1", "u2", "u3"):
        ride = await request_ride(
            batched.deps, Principal(Role.RIDER, who), new_ride_id(who, None),
            LatLng(52.52, 13.40), None,
        )  # fmt: skip
        assert ride.status is RideStatus.SEARCHING
        ids.append(ride.id)
    batched.clock.advance(1_000)
    (stats,) = await window_round(batched.deps, "i1", {})
    assert (stats.pending, stats.matched, stats.carried) == (3, 2, 1)
    got = [await batched.deps.rides.get(i) for i in ids]
    drivers = sorted(r.driver_id for r in got if r is not None and r.driver_id)
    assert drivers == ["d1", "d2"]
