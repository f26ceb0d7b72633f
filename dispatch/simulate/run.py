"""One policy over the simulated city: riders ask through the real use cases (embedded
backend, a clock moved by the loop), drivers answer offers like people (a few seconds to
react, further pickups declined more often, some offers left to time out), drive to the
pickup and the drop-off at the city's true pace, and report their positions."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any

from dispatch.bootstrap import bootstrap
from dispatch.demo.city import offset, step_towards
from dispatch.domain.assignment import Objective
from dispatch.domain.errors import DomainError
from dispatch.domain.geo import LatLng, haversine_m
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import Ride, RideStatus
from dispatch.service_layer import ride_steps
from dispatch.service_layer.batching import window_round
from dispatch.service_layer.deadlines import sweep_once
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.drivers import update_locations
from dispatch.service_layer.match_window import WindowStats
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from dispatch.settings import Settings
from dispatch.simulate.city import CENTRE, Request, SimCity
from dispatch.simulate.kpis import Tally
from geoindex import Position

START_MS = 1_800_000_000_000
TICK_MS = 500
FIX_EVERY_MS = 2_000
DRAIN_MS = 60_000  # after the last request: let the last windows and offers play out
FLEET = Principal(Role.FLEET, "sim")
DRIFT_SPEED_MPS = 2.0  # idle drivers cruising toward demand
DRIFT_NEAR_M = 1_500.0


class SimClock:
    def __init__(self) -> None:
        self.now = START_MS

    def now_ms(self) -> int:
        return self.now


@dataclass
class Watcher:
    """The use cases' Observer: what the drivers' apps and the rider would be told."""

    changes: list[Ride] = field(default_factory=list)
    windows: list[WindowStats] = field(default_factory=list)

    def ride_changed(self, ride: Ride) -> None:
        self.changes.append(ride)

    def locations(self, accepted: int, stale: int) -> None:
        return None

    def window_solved(self, stats: WindowStats) -> None:
        self.windows.append(stats)


@dataclass
class SimDriver:
    id: str
    at: LatLng
    rng: random.Random
    target: LatLng | None = None
    ride_id: str | None = None
    leg: str = "idle"  # idle | to_pickup | on_trip
    circuity: float = 1.0
    accepted_ms: int = 0
    busy_ms: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    due_ms: int
    driver_id: str
    ride_id: str
    fence: int


class Simulation:
    def __init__(self, deps: Deps, watcher: Watcher, city: SimCity, seed: int, n: int) -> None:
        self.deps, self.watcher, self.city = deps, watcher, city
        rng = random.Random(seed * 7919 + 1)
        self.drivers = {
            f"d{i}": SimDriver(f"d{i}", city.random_point(rng), random.Random(seed * 1000 + i))
            for i in range(n)
        }
        self.decisions: list[Decision] = []
        self.tally = Tally()
        self.offered_to: dict[str, tuple[str, int]] = {}  # ride -> (driver, fence) told
        self.spots = [offset(CENTRE, n, e) for n, e, _ in city.hot_spots]

    async def fixes(self, now: int) -> None:
        positions = [Position(d.id, d.at.lat, d.at.lng, now) for d in self.drivers.values()]
        await update_locations(self.deps, FLEET, positions)

    async def ask(self, req: Request, now: int) -> None:
        rider = Principal(Role.RIDER, req.rider_id)
        ride = await request_ride(
            self.deps, rider, new_ride_id(req.rider_id, None), req.pickup, req.dropoff
        )
        self.tally.requested(ride)

    def hear(self, now: int) -> None:
        """Ride changes since the last tick: offers reach their drivers."""
        changes, self.watcher.changes = self.watcher.changes, []
        for ride in changes:
            self.tally.changed(ride, now)
            if ride.status is RideStatus.OFFERED and ride.driver_id and ride.fence:
                told = (ride.driver_id, ride.fence)
                if self.offered_to.get(ride.id) == told:
                    continue
                self.offered_to[ride.id] = told
                d = self.drivers[ride.driver_id]
                self.decisions.append(
                    Decision(now + d.rng.randint(2_000, 10_000), d.id, ride.id, ride.fence)
                )

    async def decide(self, now: int) -> None:
        due = [x for x in self.decisions if x.due_ms <= now]
        self.decisions = [x for x in self.decisions if x.due_ms > now]
        for x in due:
            d = self.drivers[x.driver_id]
            ride = await self.deps.rides.get(x.ride_id)
            if ride is None or ride.status is not RideStatus.OFFERED or ride.fence != x.fence:
                continue
            km = (ride.pickup_distance_m or 0) / 1000
            roll = d.rng.random()
            actor = Principal(Role.DRIVER, d.id)
            try:
                if roll < 0.03:
                    self.tally.ignored += 1  # the offer times out
                elif roll < 0.03 + min(0.4, 0.04 + 0.08 * km):
                    await ride_steps.decline(self.deps, actor, ride.id)
                    self.tally.declined += 1
                else:
                    await ride_steps.accept(self.deps, actor, ride.id)
                    d.leg, d.target, d.ride_id = "to_pickup", ride.pickup, ride.id
                    d.circuity = self.city.true_circuity(ride.pickup)
                    d.accepted_ms = now
            except DomainError:
                continue  # the offer ran out or the ride changed meanwhile

    def drift(self, d: SimDriver) -> None:
        """An idle driver heads slowly for the nearest hot spot, as drivers do between
        rides (and stops once near it)."""
        spot = min(self.spots, key=lambda s: haversine_m(d.at, s))
        if haversine_m(d.at, spot) > DRIFT_NEAR_M:
            metres = DRIFT_SPEED_MPS * TICK_MS / 1000
            d.at, _ = step_towards(d.at, spot, metres)

    async def move(self, now: int) -> None:
        for d in self.drivers.values():
            if d.target is None or d.ride_id is None:
                self.drift(d)
                continue
            d.busy_ms += TICK_MS
            metres = self.city.speed_mps * TICK_MS / 1000 / d.circuity
            d.at, reached = step_towards(d.at, d.target, metres)
            if not reached:
                continue
            actor = Principal(Role.DRIVER, d.id)
            try:
                if d.leg == "to_pickup":
                    await ride_steps.arrive(self.deps, actor, d.ride_id)
                    ride = await ride_steps.start(self.deps, actor, d.ride_id)
                    self.tally.picked_up(ride, now - d.accepted_ms)
                    assert ride.dropoff is not None
                    d.leg, d.target = "on_trip", ride.dropoff
                    d.circuity = self.city.true_circuity(ride.dropoff)
                    continue
                await ride_steps.complete(self.deps, actor, d.ride_id)
            except DomainError:
                pass  # cancelled meanwhile: the driver is free again
            d.leg, d.target, d.ride_id = "idle", None, None


async def run_policy(
    city: SimCity, requests: list[Request], seconds: int, seed: int, n_drivers: int,
    window_ms: int, objective: Objective | None = None, max_wait_s: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    clock, watcher = SimClock(), Watcher()
    settings = Settings(match_window_ms=window_ms)
    if max_wait_s is not None:
        settings = replace(settings, match_max_wait_s=max_wait_s)
    started = time.process_time()
    async with bootstrap(settings, clock=clock, observer=watcher) as runtime:
        deps = runtime.deps
        if deps.batching is not None and objective is not None:
            config = replace(deps.batching.config, objective=objective)
            deps = replace(deps, batching=replace(deps.batching, config=config))
        sim = Simulation(deps, watcher, city, seed, n_drivers)
        pending = list(reversed(requests))
        held: dict[int, int] = {}
        end = seconds * 1000 + DRAIN_MS
        for t in range(0, end + 1, TICK_MS):
            clock.now = START_MS + t
            if t % FIX_EVERY_MS == 0:
                await sim.fixes(clock.now)
            while pending and pending[-1].at_ms <= t and t <= seconds * 1000:
                await sim.ask(pending.pop(), clock.now)
            if window_ms and t % window_ms == 0:
                await window_round(deps, "sim", held)
            sim.hear(clock.now)
            await sim.decide(clock.now)
            await sim.move(clock.now)
            await sweep_once(deps)
            sim.hear(clock.now)
        busy = sum(d.busy_ms for d in sim.drivers.values())
        out = sim.tally.kpis()
    out["utilisation"] = round(busy / (n_drivers * end), 3)
    out["windows"] = len(watcher.windows)
    if watcher.windows:
        solve_ms = sorted(w.solve_s * 1000 for w in watcher.windows)
        out["solve_ms_p95"] = round(solve_ms[math.ceil(0.95 * len(solve_ms)) - 1], 2)
    out["cpu_s"] = round(time.process_time() - started, 1)
    return out
