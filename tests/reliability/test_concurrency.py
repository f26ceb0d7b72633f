"""True concurrency, where the state machine in test_races.py is sequential: two instances'
worth of service layer on one Redis, with the real clock and a short offer timeout, fire
every step of a ride at once (accept twice, decline, cancel by rider and by driver, the
later steps, timeouts firing from two sweepers) for a few seconds. Invariant 1 must hold
throughout and, once quiet, every driver must be free or on a ride that holds it."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Awaitable
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatch.bootstrap import bootstrap
from dispatch.domain.errors import DomainError
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import Ride, RideStatus
from dispatch.service_layer import ride_steps
from dispatch.service_layer.deadlines import run_sweeper
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.errors import ActiveRideLimit
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from dispatch.settings import Settings
from geoindex import Position
from tests.waiting import eventually

from .conftest import record_figure
from .redis_state import DriverRow, double_assignments, load_state

pytestmark = [pytest.mark.slow, pytest.mark.redis]

DRIVERS = 8
RUN_S = 6.0
PICKUP = LatLng(52.52, 13.405)


async def attempt(outcomes: Counter[str], name: str, step: Awaitable[Any]) -> None:
    await asyncio.sleep(random.random() * 0.02)  # let the steps interleave differently
    try:
        await step
        outcomes[f"{name} ok"] += 1
    except DomainError as exc:
        outcomes[f"{name} {type(exc).__name__}"] += 1


async def storm(deps: list[Deps], n: int, stop_at: float, outcomes: Counter[str]) -> None:
    rider = Principal(Role.RIDER, f"u{n}")
    while time.monotonic() < stop_at:
        a, b = random.sample(deps, 2)
        try:
            ride = await request_ride(a, rider, new_ride_id(rider.id, None), PICKUP, None)
        except ActiveRideLimit:
            # Rides handed on by a decline are still offered to someone: at the cap until
            # they end (accepted, or out of candidates after a few timeouts).
            outcomes["request ActiveRideLimit"] += 1
            await asyncio.sleep(0.05)
            continue
        if ride.driver_id is None:
            await asyncio.sleep(0.05)
            continue
        d = Principal(Role.DRIVER, ride.driver_id)
        other = Principal(Role.DRIVER, f"d{random.randrange(DRIVERS)}")
        steps = [
            attempt(outcomes, "accept", ride_steps.accept(a, d, ride.id)),
            attempt(outcomes, "accept", ride_steps.accept(b, d, ride.id)),
            attempt(outcomes, "accept", ride_steps.accept(b, other, ride.id)),
            attempt(outcomes, "arrive", ride_steps.arrive(a, d, ride.id)),
            attempt(outcomes, "complete", ride_steps.complete(b, d, ride.id)),
        ]
        roll = random.random()
        if roll < 0.3:
            steps.append(attempt(outcomes, "decline", ride_steps.decline(b, d, ride.id)))
        elif roll < 0.6:
            steps.append(attempt(outcomes, "cancel", ride_steps.cancel(a, rider, ride.id)))
        elif roll < 0.8:
            steps.append(attempt(outcomes, "cancel", ride_steps.cancel(b, d, ride.id)))
        await asyncio.gather(*steps)
        # Whatever won, finish the ride if it is still going, as its driver would.
        for step in (ride_steps.arrive, ride_steps.start, ride_steps.complete):
            with contextlib.suppress(DomainError):
                current = await a.rides.get(ride.id)
                if current is None or current.driver_id is None:
                    break
                await step(b, Principal(Role.DRIVER, current.driver_id), ride.id)


async def keep_fresh(deps: Deps, stop_at: float) -> None:
    while time.monotonic() < stop_at + 3:
        now = int(time.time() * 1000)
        await deps.index.upsert(
            [Position(f"d{i}", 52.52 + i * 1e-4, 13.405, now, now) for i in range(DRIVERS)]
        )
        await asyncio.sleep(0.5)


async def settled(raw: Redis) -> tuple[dict[str, Ride], dict[str, DriverRow]]:
    """The stored state once the last offers have run out and been passed on or given
    up: no ride is offered any more, and nothing changed over the last ten sweeps."""
    before: list[object] = [None]

    async def no_offer_left_and_nothing_moving() -> tuple[dict[str, Ride], dict[str, DriverRow]]:
        state = await load_state(raw)
        previous, before[0] = before[0], state
        offered = sorted(r.id for r in state[0].values() if r.status is RideStatus.OFFERED)
        assert not offered, f"still offered: {offered}"
        assert state == previous, "the stored state is still changing"
        return state

    # Within 5 s: well before the leases of the run's last reservations (offer timeout
    # + 15 s) could free a driver a step had left behind and hide it from the checks.
    return await eventually(no_offer_left_and_nothing_moving, timeout_s=5.0, interval_s=0.2)


async def test_every_step_at_once_never_books_a_driver_twice(redis_url: str) -> None:
    # Immediate matching: the storm races requests' own reservations against every step.
    settings = Settings(
        redis_url=redis_url, offer_timeout_s=0.3, sweep_interval_s=0.02, match_window_ms=0
    )
    raw = Redis.from_url(redis_url)
    outcomes: Counter[str] = Counter()
    async with bootstrap(settings) as one, bootstrap(settings) as two:
        deps = [one.deps, two.deps]
        sweepers = [asyncio.create_task(run_sweeper(d, 0.02)) for d in deps]
        stop_at = time.monotonic() + RUN_S
        fresh = asyncio.create_task(keep_fresh(one.deps, stop_at))

        async def every_driver_in_the_index() -> bool:
            found = await one.deps.index.nearest(PICKUP.lat, PICKUP.lng, DRIVERS, 1_000)
            return len(found) == DRIVERS

        await eventually(every_driver_in_the_index)
        checks = 0
        storms = asyncio.gather(*(storm(deps, n, stop_at, outcomes) for n in range(12)))
        while not storms.done():
            rides, drivers = await load_state(raw)
            assert double_assignments(rides, drivers)["drivers_in_two_active_rides"] == {}
            checks += 1
            await asyncio.sleep(0.2)
        await storms
        rides, drivers = await settled(raw)
        for task in (*sweepers, fresh):
            task.cancel()
        await asyncio.gather(*sweepers, fresh, return_exceptions=True)
    await raw.aclose()
    report = double_assignments(rides, drivers)
    assert report["drivers_in_two_active_rides"] == {}
    assert report["committed_rides_not_held_by_their_driver"] == []
    active = {r.id for r in rides.values() if r.status is not RideStatus.NO_DRIVER}
    for d, row in drivers.items():
        assert row.status in ("available", "on_ride", "reserved"), (d, row)
        if row.status != "available":
            assert row.ride in active, (d, row)
    record_figure(
        "concurrency",
        rides=len(rides),
        mid_run_checks=checks,
        **{k.replace(" ", "_"): v for k, v in sorted(outcomes.items())},
    )
    assert outcomes["accept ok"] > 0 and outcomes["cancel ok"] > 0
