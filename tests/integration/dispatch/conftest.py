"""Backends for the dispatch contract and integration tests: the embedded one, a single
Redis and a Redis Cluster, all wired by the service's own bootstrap, with a clock the
test moves by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from dispatch.bootstrap import bootstrap
from dispatch.service_layer.deps import Deps
from dispatch.settings import Settings
from geoindex import Position

START_MS = 1_800_000_000_000


class FakeClock:
    def __init__(self, now_ms: int = START_MS) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@dataclass
class Backend:
    name: str
    deps: Deps
    clock: FakeClock

    async def fix(self, driver_id: str, lat: float = 52.52, lng: float = 13.40) -> None:
        """A fresh GPS fix for the driver, at the clock's current time."""
        await self.deps.index.upsert([Position(driver_id, lat, lng, self.clock.now)])

    async def notifier_ready(self) -> None:
        ready = getattr(self.deps.notifier, "subscribed", None)
        if ready is not None:
            await asyncio.wait_for(ready.wait(), 5)


def settings_for(name: str, request: pytest.FixtureRequest) -> Settings:
    if name == "redis":
        return Settings(redis_url=request.getfixturevalue("redis_url"))
    if name == "cluster":
        return Settings(redis_cluster_url=request.getfixturevalue("redis_cluster_url"))
    return Settings()


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("cluster", marks=pytest.mark.redis),
    ]
)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    clock = FakeClock()
    async with bootstrap(settings_for(request.param, request), clock=clock) as runtime:
        yield Backend(request.param, runtime.deps, clock)
