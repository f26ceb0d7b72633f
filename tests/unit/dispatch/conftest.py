"""The service wired on the embedded backend with a hand-moved clock: use-case tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from dispatch.bootstrap import bootstrap
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import Ride
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.match_window import WindowStats
from dispatch.settings import Settings
from geoindex import Position
from tests.fake_clock import FakeClock

PICKUP = (52.5200, 13.4050)


@dataclass
class Recorder:
    rides: list[Ride] = field(default_factory=list)
    accepted: int = 0
    stale: int = 0
    windows: list[WindowStats] = field(default_factory=list)  # batched matching's

    def ride_changed(self, ride: Ride) -> None:
        self.rides.append(ride)

    def locations(self, accepted: int, stale: int) -> None:
        self.accepted += accepted
        self.stale += stale

    def window_solved(self, stats: WindowStats) -> None:
        self.windows.append(stats)


@dataclass
class World:
    deps: Deps
    clock: FakeClock
    seen: Recorder

    async def driver_at(self, driver_id: str, north_m: float) -> None:
        """Put a driver `north_m` metres north of the pickup point, with a fresh fix."""
        lat = PICKUP[0] + north_m / 111_195.0
        await self.deps.index.upsert([Position(driver_id, lat, PICKUP[1], self.clock.now)])


def driver(i: str) -> Principal:
    return Principal(Role.DRIVER, i)


def rider(i: str) -> Principal:
    return Principal(Role.RIDER, i)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = FakeClock()
    seen = Recorder()
    # Immediate matching: these tests expect a ride's answer to name its driver.
    settings = Settings(match_window_ms=0)
    async with bootstrap(settings, clock=clock, observer=seen) as runtime:
        yield World(runtime.deps, clock, seen)
