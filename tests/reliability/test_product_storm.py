"""Products under a concurrent storm on a Redis Cluster: two instances' worth of service
layer, with the real clock, a short offer timeout and sweepers, take accessible (wav) and
economy requests at once from a dozen riders whose drivers accept, decline, cancel or let
offers run out (re-offers), while two accessible drivers change to a car that is not,
mid-shift. Every offer either instance makes is recorded: an accessible request is never
offered to a car that is not accessible (at the time the reservation ran), and no driver
ends in two active rides."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

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
from .redis_state import double_assignments, load_state

pytestmark = [pytest.mark.slow, pytest.mark.redis]

RUN_S = 5.0
PICKUP = LatLng(52.52, 13.405)
ALWAYS_ACCESSIBLE = ["d0", "d1", "d2"]
CHANGING = ["d3", "d4"]  # accessible until they change car mid-shift
NEVER_ACCESSIBLE = [f"d{i}" for i in range(5, 12)]  # and nearest the pickup
DRIVERS = ALWAYS_ACCESSIBLE + CHANGING + NEVER_ACCESSIBLE


class Offers:
    """Every offer either instance makes (an Observer: it sees each ride change)."""

    def __init__(self) -> None:
        self.made: list[Ride] = []

    def ride_changed(self, ride: Ride) -> None:
        if ride.status is RideStatus.OFFERED:
            self.made.append(ride)

    def locations(self, accepted: int, stale: int) -> None:
        return None


def north_m(driver_id: str) -> float:
    # The cars that may never take an accessible ride sit nearest the pickup.
    return 50.0 * (DRIVERS.index(driver_id) + 1) * (1 if driver_id in NEVER_ACCESSIBLE else 3)


async def keep_fresh(deps: Deps, until: float) -> None:
    while time.monotonic() < until:
        now = int(time.time() * 1000)
        fixes = [
            Position(d, PICKUP.lat + north_m(d) / 111_195.0, PICKUP.lng, now, now) for d in DRIVERS
        ]
        await deps.index.upsert(fixes)
        await asyncio.sleep(0.5)


async def attempt(outcomes: Counter[str], name: str, step: Any) -> None:
    await asyncio.sleep(random.random() * 0.02)
    try:
        await step
        outcomes[f"{name} ok"] += 1
    except DomainError as exc:
        outcomes[f"{name} {type(exc).__name__}"] += 1


async def storm(deps: list[Deps], n: int, stop_at: float, outcomes: Counter[str]) -> None:
    rider = Principal(Role.RIDER, f"u{n}")
    while time.monotonic() < stop_at:
        a, b = random.sample(deps, 2)
        product = random.choice(["wav", "economy"])
        try:
            ride = await request_ride(
                a, rider, new_ride_id(rider.id, None), PICKUP, None, product=product
            )
        except ActiveRideLimit:
            outcomes["request ActiveRideLimit"] += 1
            await asyncio.sleep(0.05)
            continue
        outcomes[f"request {product} {ride.status}"] += 1
        if ride.driver_id is None:
            await asyncio.sleep(0.05)
            continue
        d = Principal(Role.DRIVER, ride.driver_id)
        roll = random.random()
        if roll < 0.3:
            await attempt(outcomes, "decline", ride_steps.decline(b, d, ride.id))  # re-offer
        elif roll < 0.5:
            await asyncio.sleep(0.4)  # the offer times out: a sweeper re-offers it
        elif roll < 0.6:
            await attempt(outcomes, "cancel", ride_steps.cancel(a, rider, ride.id))
        for step in (ride_steps.accept, ride_steps.arrive, ride_steps.start, ride_steps.complete):
            with contextlib.suppress(DomainError):
                current = await a.rides.get(ride.id)
                if current is None or current.driver_id is None:
                    break
                await step(b, Principal(Role.DRIVER, current.driver_id), ride.id)


async def change_cars_mid_shift(deps: Deps, after_s: float) -> int:
    """The CHANGING drivers swap their accessible car for one that is not; returns the
    time (ms) by which both changes are stored: reservations started later see them."""
    await asyncio.sleep(after_s)
    for d in CHANGING:
        await deps.index.set_products(d, ["economy", "xl"])
    return int(time.time() * 1000) + 1


async def test_an_accessible_request_is_never_offered_to_a_car_that_is_not(
    redis_cluster_url: str,
) -> None:
    # Immediate matching, whose product filter and upgrades this storms (the windows'
    # own are tested in tests/unit/dispatch/test_products.py).
    settings = Settings(
        redis_cluster_url=redis_cluster_url,
        offer_timeout_s=0.3,
        sweep_interval_s=0.02,
        match_window_ms=0,
    )
    offers = Offers()
    outcomes: Counter[str] = Counter()
    raw = RedisCluster.from_url(redis_cluster_url)
    async with (
        bootstrap(settings, observer=offers) as one,
        bootstrap(settings, observer=offers) as two,
    ):
        deps = [one.deps, two.deps]
        stop_at = time.monotonic() + RUN_S
        fresh = asyncio.create_task(keep_fresh(one.deps, stop_at + 3))

        async def everyone_in_the_index() -> bool:
            found = await one.deps.index.nearest(PICKUP.lat, PICKUP.lng, len(DRIVERS), 2_000)
            return len(found) == len(DRIVERS)

        await eventually(everyone_in_the_index)
        for d in ALWAYS_ACCESSIBLE + CHANGING:
            await one.deps.index.set_products(d, ["wav", "economy"])
        for d in NEVER_ACCESSIBLE:
            await one.deps.index.set_products(d, ["economy", "xl"])
        sweepers = [asyncio.create_task(run_sweeper(d, 0.02)) for d in deps]
        changed = asyncio.create_task(change_cars_mid_shift(two.deps, RUN_S / 2))
        await asyncio.gather(*(storm(deps, n, stop_at, outcomes) for n in range(12)))
        changed_by = await changed
        await asyncio.sleep(1.0)  # the last offers run out and are passed on
        for task in (*sweepers, fresh):
            task.cancel()
        await asyncio.gather(*sweepers, fresh, return_exceptions=True)
        rides, drivers = await load_state(raw)
    await raw.aclose()

    wav = [r for r in offers.made if r.product == "wav"]
    assert [r.id for r in wav if r.driver_id in NEVER_ACCESSIBLE] == []
    late = [r for r in wav if r.updated_at > changed_by and r.driver_id in CHANGING]
    assert late == []
    assert double_assignments(rides, drivers)["drivers_in_two_active_rides"] == {}
    taken_by = Counter(r.driver_id for r in wav)
    record_figure(
        "product_storm",
        offers=len(offers.made),
        wav_offers=len(wav),
        wav_offers_to_changing_before=sum(taken_by[d] for d in CHANGING),
        **{k.replace(" ", "_"): v for k, v in sorted(outcomes.items())},
    )
    # The storm did what it is for: accessible rides offered (some re-offered) and
    # economy rides taken by the nearer cars.
    assert len(wav) > 10 and outcomes["decline ok"] > 0
    assert any(r.product == "economy" and r.driver_id in NEVER_ACCESSIBLE for r in offers.made)
