"""A matching window that dies (or stalls past its lease) after reserving its drivers and
before its rides name them: the next window of the region frees those drivers and
matches them, and the stalled window can no longer store its offers."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest

from dispatch.domain.drivers import DriverStatus
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import Ride, RideStatus
from dispatch.service_layer.batching import window_round
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.match_window import Batching
from dispatch.service_layer.ports import RideStore
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from tests.integration.dispatch.conftest import Backend

HERE = LatLng(52.52, 13.40)
RIDERS = ("u1", "u2", "u3")


class Died(Exception):
    """The holder's process ended here."""


@dataclass
class Dying:
    """A ride store whose batch write (a window storing its offers) never happens: it
    fails, or waits for `go` and then writes, as a window that stalled."""

    inner: RideStore
    go: asyncio.Event | None = None
    reached: asyncio.Event | None = None
    asked: Sequence[Ride] = ()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def replace_many(self, rides: Sequence[Ride]) -> list[bool]:
        self.asked = rides
        if self.go is None:
            raise Died
        assert self.reached is not None
        self.reached.set()
        await self.go.wait()
        return await self.inner.replace_many(rides)


def _b(deps: Deps) -> Batching:
    assert deps.batching is not None
    return deps.batching


async def _searching(batched: Backend) -> list[str]:
    for d, north in (("d1", 0.001), ("d2", 0.002), ("d3", 0.003)):
        await batched.fix(d, HERE.lat + north, HERE.lng)
    ids = []
    for who in RIDERS:
        ride = await request_ride(
            batched.deps, Principal(Role.RIDER, who), new_ride_id(who, None), HERE, None
        )
        assert ride.status is RideStatus.SEARCHING
        ids.append(ride.id)
    batched.clock.advance(1_000)
    return ids


async def _no_driver_twice_and_each_held_by_its_ride(deps: Deps, ids: list[str]) -> list[Ride]:
    got = [await deps.rides.get(i) for i in ids]
    offered = [r for r in got if r is not None and r.status is RideStatus.OFFERED]
    assert len(offered) == len(ids)
    assert max(Counter(r.driver_id for r in offered).values()) == 1
    for ride in offered:
        assert ride.driver_id is not None
        rec = await deps.drivers.get(ride.driver_id)
        assert (rec.status, rec.ride_id, rec.fence) == (DriverStatus.RESERVED, ride.id, ride.fence)
    return offered


@pytest.mark.parametrize("successor", ["b", "a"])  # another instance, or the same one
async def test_drivers_a_dead_window_reserved_are_freed_and_matched_in_the_next(
    batched: Backend, successor: str
) -> None:
    deps = batched.deps
    ids = await _searching(batched)
    dying = Dying(deps.rides)
    held: dict[int, int] = {}
    with pytest.raises(Died):
        await window_round(replace(deps, rides=dying), "a", held)
    (region, fence) = held.popitem()
    stranded = {r.driver_id for r in dying.asked}
    assert stranded == {"d1", "d2", "d3"}
    for d in stranded:
        assert (await deps.drivers.get(d)).status is DriverStatus.RESERVED
    for ride_id in ids:
        ride = await deps.rides.get(ride_id)
        assert ride is not None and ride.status is RideStatus.SEARCHING
    if successor == "b":
        await _b(deps).store.drop_lease(region, "a", fence)  # as when it lapses
    later = {region: fence} if successor == "a" else {}

    batched.clock.advance(1_000)
    (stats,) = await window_round(deps, successor, later)

    if successor == "b":
        assert later[region] > fence  # taken over under a new fence
    assert (stats.freed, stats.matched) == (3, 3)
    await _no_driver_twice_and_each_held_by_its_ride(deps, ids)
    assert (await _b(deps).store.pending(region, 10)).holds == []


async def test_a_window_stalled_past_its_lease_can_no_longer_offer_what_it_reserved(
    batched: Backend,
) -> None:
    deps = batched.deps
    ids = await _searching(batched)
    stalled = Dying(deps.rides, go=asyncio.Event(), reached=asyncio.Event())
    held: dict[int, int] = {}
    old = asyncio.create_task(window_round(replace(deps, rides=stalled), "a", held))
    await asyncio.wait_for(stalled.reached.wait(), 10)  # reserved, not yet written
    (region, fence) = next(iter(held.items()))
    await _b(deps).store.drop_lease(region, "a", fence)  # as when it lapses

    batched.clock.advance(1_000)
    (stats,) = await window_round(deps, "b", {})
    assert (stats.freed, stats.matched) == (3, 3)
    stalled.go.set()
    (late,) = await asyncio.wait_for(old, 10)

    assert late.matched == 0  # its compare-and-sets found the rides written since
    offered = await _no_driver_twice_and_each_held_by_its_ride(deps, ids)
    assert all(r.attempts == 1 for r in offered)
    for ride in stalled.asked:  # the stalled window's tokens confirm nothing
        assert ride.driver_id is not None and ride.fence is not None
        assert not await deps.drivers.confirm(
            ride.driver_id, ride.id, ride.fence, batched.clock.now
        )
