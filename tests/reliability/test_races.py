"""Races over the service layer on a real Redis: hypothesis interleaves ride requests,
accepts, declines, cancels, the ride's later steps, status changes, position fixes (some
stale), clock jumps that fire offer timeouts and leases, and index expiry; after every
step invariants 1, 3 and 4 of the design must hold, read back from Redis itself, and no
rider may have more active rides than the cap."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from redis.asyncio import Redis

from dispatch.bootstrap import bootstrap
from dispatch.domain.drivers import DriverStatus
from dispatch.domain.errors import DomainError
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import ACTIVE, RideStatus
from dispatch.service_layer import drivers as driver_cases
from dispatch.service_layer import ride_steps
from dispatch.service_layer.deadlines import CLAIM_BATCH, sweep_once
from dispatch.service_layer.drivers import Fix
from dispatch.service_layer.errors import ActiveRideLimit
from dispatch.service_layer.index_sweep import sweep_index_once
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from dispatch.settings import Settings
from geoindex import UpsertResult
from tests.fake_clock import FakeClock

from .conftest import record_figure
from .redis_state import double_assignments, load_state

pytestmark = [pytest.mark.slow, pytest.mark.redis]

DRIVERS = [f"d{i}" for i in range(4)]
RIDERS = [f"u{i}" for i in range(3)]
PICKUP = LatLng(52.52, 13.405)
drivers_st = st.sampled_from(DRIVERS)
STEPS: Counter[str] = Counter()  # what the runs did, so a run that did nothing fails
riders_st = st.sampled_from(RIDERS)


class Dispatch(RuleBasedStateMachine):
    redis_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.raw = Redis.from_url(self.redis_url)
        self.run(self.raw.flushall())
        # Immediate matching: the rules step a ride from the driver its request reserved.
        settings = Settings(redis_url=self.redis_url, match_window_ms=0)
        self._ctx = bootstrap(settings, clock=self.clock)
        self.deps = self.run(self._ctx.__aenter__()).deps
        self.last_fix: dict[str, tuple[int, int] | None] = dict.fromkeys(DRIVERS)  # (ts, seq)
        self.last_lat: dict[str, float] = {}
        self.rides: list[str] = []
        self.offers_seen: set[tuple[str, int]] = set()
        self.n = 0
        self.everyone_pings()

    def everyone_pings(self) -> None:
        for i, d in enumerate(DRIVERS):
            last = self.last_fix[d]
            fix = Fix(
                PICKUP.lat + i * 1e-4, PICKUP.lng, self.clock.now, (last[1] if last else 0) + 1
            )
            if last is None or fix.ts_ms > last[0]:
                self.run(driver_cases.update_location(self.deps, self.driver(d), d, fix))
                self.last_fix[d] = (fix.ts_ms, fix.seq)
                self.last_lat[d] = fix.lat

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self._ctx.__aexit__(None, None, None))
        self.run(self.raw.aclose())
        self.loop.close()

    # -- steps ------------------------------------------------------------------------
    @rule(
        d=drivers_st,
        dt=st.integers(-3_000, 3_000),
        dseq=st.integers(-2, 3),
        north=st.integers(0, 20),
    )
    def fix(self, d: str, dt: int, dseq: int, north: int) -> None:
        last = self.last_fix[d]
        ts = self.clock.now + dt
        seq = (last[1] if last else 0) + dseq
        if ts < 0 or seq < 0:
            return
        fix = Fix(PICKUP.lat + north * 1e-4, PICKUP.lng, ts, seq)
        result = self.run(driver_cases.update_location(self.deps, self.driver(d), d, fix)).result
        newer = last is None or (ts > last[0] and seq > last[1])
        # The very same fix again (a retry) is accepted and changes nothing.
        same = last == (ts, seq) and abs(self.last_lat.get(d, 0.0) - fix.lat) < 1e-9
        assert (result is UpsertResult.ACCEPTED) == (newer or same), (last, ts, seq, result)
        if newer:
            self.last_fix[d] = (ts, seq)
            self.last_lat[d] = fix.lat

    @rule(d=drivers_st, available=st.booleans())
    def set_status(self, d: str, available: bool) -> None:
        status = DriverStatus.AVAILABLE if available else DriverStatus.OFFLINE
        self.attempt(driver_cases.set_status(self.deps, self.driver(d), d, status))

    @initialize()
    def one_ride_accepted_one_handed_on(self) -> None:
        """Every run starts with rides past their first offer, so that no run, however the
        draws fall, only ever shuffles fresh offers."""
        for u in RIDERS[:2]:
            self.request(u)
        first, second = (self.run(self.deps.rides.get(r)) for r in self.rides[:2])
        self.attempt(ride_steps.accept(self.deps, self.driver(first.driver_id), first.id))
        self.attempt(ride_steps.decline(self.deps, self.driver(second.driver_id), second.id))

    @rule(u=riders_st)
    def request(self, u: str) -> None:
        self.n += 1
        ride_id = new_ride_id(u, f"key-{self.n}")
        active_before = self.active_rides_of(u)
        try:
            self.run(request_ride(self.deps, Principal(Role.RIDER, u), ride_id, PICKUP, None))
        except ActiveRideLimit:
            assert active_before >= self.deps.policy.max_active_rides, active_before
            assert self.run(self.deps.rides.get(ride_id)) is None
            STEPS["request -> active_ride_limit"] += 1
            return
        self.rides.append(ride_id)
        STEPS["request -> " + self.run(self.deps.rides.get(ride_id)).status] += 1

    def active_rides_of(self, rider: str) -> int:
        return sum(1 for r in self.rides_in(*ACTIVE) if r.rider_id == rider)

    def rides_in(self, *statuses: RideStatus) -> list[Any]:
        rides = [self.run(self.deps.rides.get(r)) for r in self.rides]
        return [r for r in rides if r.status in statuses]

    @rule(data=st.data())
    def accept_offer(self, data: st.DataObject) -> None:
        self.answer(data, ride_steps.accept)

    @rule(data=st.data())
    def decline_offer(self, data: st.DataObject) -> None:
        self.answer(data, ride_steps.decline)

    def answer(self, data: st.DataObject, step: Any) -> None:
        offered = self.rides_in(RideStatus.OFFERED)
        if offered:
            ride = data.draw(st.sampled_from(offered))
            self.attempt(step(self.deps, self.driver(ride.driver_id), ride.id))

    @rule(data=st.data())
    def move_ride_along(self, data: st.DataObject) -> None:
        steps = {
            RideStatus.ACCEPTED: ride_steps.arrive,
            RideStatus.ARRIVED: ride_steps.start,
            RideStatus.IN_PROGRESS: ride_steps.complete,
        }
        committed = self.rides_in(*steps)
        if committed:
            ride = data.draw(st.sampled_from(committed))
            self.attempt(steps[ride.status](self.deps, self.driver(ride.driver_id), ride.id))

    @rule(
        data=st.data(),
        d=drivers_st,
        step=st.sampled_from(["accept", "decline", "arrive", "start", "complete"]),
    )
    def anyone_tries_any_step(self, data: st.DataObject, d: str, step: str) -> None:
        if self.rides:
            ride_id = data.draw(st.sampled_from(self.rides))
            self.attempt(getattr(ride_steps, step)(self.deps, self.driver(d), ride_id))

    @rule(data=st.data(), by_rider=st.booleans())
    def cancel(self, data: st.DataObject, by_rider: bool) -> None:
        if not self.rides:
            return
        ride = self.run(self.deps.rides.get(data.draw(st.sampled_from(self.rides))))
        who = Principal(Role.RIDER, ride.rider_id) if by_rider else None
        if who is None:
            who = self.driver(ride.driver_id or data.draw(drivers_st))
        self.attempt(ride_steps.cancel(self.deps, who, ride.id))

    @rule(ms=st.sampled_from([200, 2_000, 8_000, 16_000, 31_000]))
    def time_passes(self, ms: int) -> None:
        """Offer timeouts and leases fire, as any instance's sweeper would fire them."""
        self.clock.advance(ms)
        while self.run(sweep_once(self.deps)) == CLAIM_BATCH:
            pass

    @rule()
    def drivers_ping(self) -> None:
        self.clock.advance(1)
        self.everyone_pings()

    @rule()
    def index_expiry(self) -> None:
        for d in self.run(sweep_index_once(self.deps)):
            self.last_fix[d] = None  # its position and sequence are forgotten

    # -- invariants ---------------------------------------------------------------------
    @invariant()
    def one_ride_per_driver_and_one_driver_per_ride(self) -> None:  # invariant 1
        rides, drivers = self.run(load_state(self.raw))
        report = double_assignments(rides, drivers, self.clock.now)
        assert report["drivers_in_two_active_rides"] == {}
        assert report["committed_rides_not_held_by_their_driver"] == []
        assert report["live_offers_not_held"] == 0
        for d, row in drivers.items():
            if row.status == "on_ride":
                ride = rides[row.ride]  # type: ignore[index]
                assert ride.status in (
                    RideStatus.ACCEPTED,
                    RideStatus.ARRIVED,
                    RideStatus.IN_PROGRESS,
                ), (d, row, ride)
                assert (ride.driver_id, ride.fence) == (d, row.fence)
        # Invariant 4, dispatch side: every offer made went to a driver fresh at the time.
        ttl = self.deps.index.ttl_ms
        for ride in rides.values():
            if ride.status is RideStatus.OFFERED and ride.driver_id and ride.fence:
                if (ride.id, ride.fence) not in self.offers_seen:
                    self.offers_seen.add((ride.id, ride.fence))
                    last = self.last_fix[ride.driver_id]
                    assert last is not None and last[0] >= self.clock.now - ttl, (ride, last)

    @invariant()
    def no_rider_holds_more_active_rides_than_the_cap(self) -> None:
        for u in RIDERS:
            assert self.active_rides_of(u) <= self.deps.policy.max_active_rides, u

    @invariant()
    def newest_fix_wins_and_silent_drivers_are_never_found(self) -> None:  # invariants 3, 4
        ttl = self.deps.index.ttl_ms
        for d, last in self.last_fix.items():
            state = self.run(self.deps.index.get(d))
            if last is not None and state is not None and state.ts_ms is not None:
                assert (state.ts_ms, state.seq) == last, (d, state, last)
        found = self.run(self.deps.index.nearest(PICKUP.lat, PICKUP.lng, 10, 5_000))
        for n in found:
            last = self.last_fix[n.driver_id]
            assert last is not None and last[0] >= self.clock.now - ttl, (n, last)

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def driver(d: str) -> Principal:
        return Principal(Role.DRIVER, d)

    def attempt(self, coro: Any) -> None:
        """A refused step (wrong state, wrong party, busy driver) is fine; it must only
        change nothing, which the invariants check."""
        name = coro.__qualname__
        try:
            self.run(coro)
            STEPS[name + " ok"] += 1
        except DomainError as e:
            STEPS[name + " " + type(e).__name__] += 1


def test_interleaved_ride_steps_keep_invariants_1_3_and_4(redis_url: str) -> None:
    Dispatch.redis_url = redis_url
    machine = settings(
        max_examples=int(os.environ.get("RACES_EXAMPLES", "30")),
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )(Dispatch)
    STEPS.clear()
    machine.TestCase().runTest()
    record_figure("races", **{k.replace(" ", "_"): v for k, v in sorted(STEPS.items())})
    for done in ("accept ok", "decline ok", "cancel ok"):
        assert STEPS[done] > 0, STEPS
