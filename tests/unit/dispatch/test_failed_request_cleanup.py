"""A ride request that fails between reserving a driver and storing its ride gives the
driver back at once (the lease stays the backstop), uncounts the ride and gives up its
Idempotency-Key, all within one short budget."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest

from dispatch.domain.drivers import DriverStatus
from dispatch.domain.geo import LatLng
from dispatch.domain.rides import Ride
from dispatch.service_layer.cleanup import CLEANUP_BUDGET_S, CleanupBudget
from dispatch.service_layer.errors import BackendUnavailable
from dispatch.service_layer.ride_requests import new_ride_id, request_ride, request_ride_once

from .conftest import PICKUP, World, rider

HERE = LatLng(*PICKUP)


class FailingCreate:
    """The ride store, but storing a new ride fails (Redis gone after the reservation)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def create(self, ride: Ride, answer: Any = None) -> bool:
        raise BackendUnavailable("the store went away")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class SlowDrivers:
    """The driver store, but releasing hangs (the store is slow, not down)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def release(self, *args: Any, **kwargs: Any) -> bool:
        await asyncio.sleep(10)
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_the_reserved_driver_is_given_back_at_once(world: World) -> None:
    await world.driver_at("d1", 100)
    failing = replace(world.deps, rides=FailingCreate(world.deps.rides))
    with pytest.raises(BackendUnavailable):
        await request_ride(failing, rider("u1"), new_ride_id("u1", None), HERE, None)
    # no lease to wait for: free and searchable now, the count gone
    rec = await world.deps.drivers.get("d1")
    assert rec.status is DriverStatus.AVAILABLE and rec.ride_id is None
    assert [n.driver_id for n in await world.deps.index.nearest(*PICKUP, 5, 1000)] == ["d1"]
    assert await world.deps.active_rides.hold("u1", "probe", world.clock.now, 1) == []
    # and the next rider is offered that driver at once
    ride = await request_ride(world.deps, rider("u2"), new_ride_id("u2", None), HERE, None)
    assert ride.driver_id == "d1"


async def test_the_key_is_given_up_too_and_a_retry_gets_the_driver(world: World) -> None:
    await world.driver_at("d1", 100)
    failing = replace(world.deps, rides=FailingCreate(world.deps.rides))
    with pytest.raises(BackendUnavailable):
        await request_ride_once(failing, rider("u1"), HERE, None, "k1", lambda r: r.id.encode())
    answer = await request_ride_once(
        world.deps, rider("u1"), HERE, None, "k1", lambda r: (r.driver_id or "").encode()
    )
    assert answer == b"d1"  # the key was free, and so was the driver


async def test_all_the_undoing_shares_one_short_budget(world: World) -> None:
    await world.driver_at("d1", 100)
    slow = replace(
        world.deps,
        rides=FailingCreate(world.deps.rides),
        drivers=SlowDrivers(world.deps.drivers),
    )
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        await request_ride_once(slow, rider("u1"), HERE, None, "k2", lambda r: b"")
    took = time.monotonic() - started
    assert took < CLEANUP_BUDGET_S + 0.2, took  # not one budget per undo, nor the 10 s
    # the release did not land: the lease is the backstop for this one
    rec = await world.deps.drivers.get("d1")
    assert rec.status is DriverStatus.RESERVED


async def test_a_budget_is_shared_and_runs_nothing_once_spent() -> None:
    now = [0.0]
    budget = CleanupBudget(0.25, clock=lambda: now[0])
    assert budget.left_s() == 0.25  # started by the first step
    now[0] = 0.2
    assert budget.left_s() == pytest.approx(0.05)
    now[0] = 0.3
    ran = []

    async def step() -> None:
        ran.append(1)

    assert await budget.run(step()) is False and ran == []
