"""Backends for the dispatch contract and integration tests: the embedded one, a single
Redis and a Redis Cluster, all wired by the service's own bootstrap, with a clock the
test moves by hand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.bootstrap import bootstrap
from dispatch.domain.principals import parse_subject
from dispatch.entrypoints.server import start
from dispatch.service_layer.deps import Deps
from dispatch.settings import Settings
from geoindex import Position
from tests.fake_clock import FakeClock


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


BACKENDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("cluster", marks=pytest.mark.redis),
]


def settings_for(name: str, request: pytest.FixtureRequest) -> Settings:
    """Immediate matching (a ride's answer names its driver); batched tests override it."""
    if name == "redis":
        return Settings(redis_url=request.getfixturevalue("redis_url"), match_window_ms=0)
    if name == "cluster":
        url = request.getfixturevalue("redis_cluster_url")
        return Settings(redis_cluster_url=url, match_window_ms=0)
    return Settings(match_window_ms=0)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    clock = FakeClock()
    async with bootstrap(settings_for(request.param, request), clock=clock) as runtime:
        yield Backend(request.param, runtime.deps, clock)


@pytest.fixture(params=BACKENDS)
async def batched(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """The backends with batched matching (1 s windows)."""
    clock = FakeClock()
    settings = replace(settings_for(request.param, request), match_window_ms=1000)
    async with bootstrap(settings, clock=clock) as runtime:
        yield Backend(request.param, runtime.deps, clock)


# -- running instances ---------------------------------------------------------------------
@dataclass
class Instance:
    """One real dispatch instance (the production app and runner) on a loopback port."""

    settings: Settings
    runner: web.AppRunner
    port: int
    session: aiohttp.ClientSession
    tokens: TokenCodec

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def auth(self, role: str, ident: str) -> dict[str, str]:
        token = self.tokens.issue(parse_subject(f"{role}:{ident}"), 3600)
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: str, path: str, who: tuple[str, str] | None = None, **kw: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = dict(kw.pop("headers", {}))
        if who is not None:
            headers.update(self.auth(*who))
        async with self.session.request(method, self.url + path, headers=headers, **kw) as resp:
            raw = await resp.read()
            ctype = resp.headers.get("Content-Type", "")
            data = orjson.loads(raw) if raw and ctype.startswith("application/json") else raw
            return resp.status, data, resp

    async def fix(self, driver_id: str, lat: float, lng: float, seq: int = 1) -> None:
        body = {"lat": lat, "lng": lng, "ts": int(time.time() * 1000), "seq": seq}
        status, data, _ = await self.call(
            "POST", f"/v1/drivers/{driver_id}/location", ("driver", driver_id), json=body
        )
        assert status == 202, data

    async def stop(self) -> None:
        await self.runner.cleanup()


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Instance]:
    settings = replace(settings, port=0, host="127.0.0.1")
    runner, port = await start(settings)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    inst = Instance(settings, runner, port, session, TokenCodec(settings.jwt_secret))
    try:
        yield inst
    finally:
        await session.close()
        await runner.cleanup()


@pytest.fixture
async def service() -> AsyncIterator[Instance]:
    """One instance on the embedded backend."""
    async with running(Settings(instance_id="test-1", match_window_ms=0)) as inst:
        yield inst


# -- the market --------------------------------------------------------------------------
HERE = {"lat": 52.5200, "lng": 13.4050}
THERE = {"lat": 52.5400, "lng": 13.4300}
OPS = ("ops", "o1")


@pytest.fixture
async def market() -> AsyncIterator[Instance]:
    # Tests poll with quotes: the per-rider limit has its own test, on the defaults.
    settings = Settings(
        instance_id="m-1",
        surge_interval_s=0.1,
        surge_lease_s=1.0,
        quote_rate_burst=10_000,
        match_window_ms=0,
    )
    async with running(settings) as inst:
        yield inst


async def quote(inst: Instance, who: str = "u1", **body: object) -> dict[str, object]:
    status, data, _ = await inst.call(
        "POST", "/v1/quotes", ("rider", who), json={"pickup": HERE, **body}
    )
    assert status == 201, data
    return data  # type: ignore[no-any-return]
