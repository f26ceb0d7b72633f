"""Helpers for the reliability suite: a small HTTP client that signs its own tokens, and a
place where each fault test records the figure it measured (printed at the end of the run
and written as JSON where RELIABILITY_FIGURES points, for docs/reliability.md)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.domain.principals import parse_subject
from dispatch.settings import Settings
from tests.integration.dispatch.conftest import running

BERLIN = {"lat": 52.52, "lng": 13.405}
_FIGURES: dict[str, dict[str, Any]] = {}


def record_figure(name: str, **values: Any) -> None:
    _FIGURES[name] = values
    print(f"FIGURE {name} {json.dumps(values, sort_keys=True)}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, values in sorted(_FIGURES.items()):
        terminalreporter.write_line(f"{name}: {json.dumps(values, sort_keys=True)}")
    target = os.environ.get("RELIABILITY_FIGURES")
    if target:
        Path(target).write_text(json.dumps(_FIGURES, indent=2, sort_keys=True) + "\n")


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]
    elapsed_s: float


@dataclass
class Client:
    """Calls one base URL as any principal: `who` is "driver:d1", "rider:u1", "fleet:gw"."""

    base: str
    secret: str
    session: aiohttp.ClientSession
    _tokens: dict[str, str] = field(default_factory=dict)

    def token(self, who: str, ttl_s: int = 3600) -> str:
        if who not in self._tokens:
            codec = TokenCodec(self.secret)
            self._tokens[who] = codec.issue(parse_subject(who), ttl_s)
        return self._tokens[who]

    def auth(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"Authorization": f"Bearer {self.token(who)}"}

    async def call(
        self, method: str, path: str, who: str | None = None, timeout: float = 15, **kw: Any
    ) -> Reply:
        headers = {**self.auth(who), **kw.pop("headers", {})}
        started = time.monotonic()
        async with self.session.request(
            method,
            self.base + path,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            **kw,
        ) as resp:
            raw = await resp.read()
            elapsed = time.monotonic() - started
            ctype = resp.headers.get("Content-Type", "")
            body: Any = raw
            if raw and ctype.startswith("application/json"):
                body = orjson.loads(raw)
            return Reply(resp.status, body, dict(resp.headers), elapsed)

    async def fix(self, driver_id: str, lat: float, lng: float, seq: int) -> Reply:
        body = {"lat": lat, "lng": lng, "ts": int(time.time() * 1000), "seq": seq}
        return await self.call(
            "POST", f"/v1/drivers/{driver_id}/location", f"driver:{driver_id}", json=body
        )

    async def online(self, driver_id: str, lat: float, lng: float, seq: int = 1) -> None:
        """A fresh fix, then status available: the driver can be dispatched."""
        assert (await self.fix(driver_id, lat, lng, seq)).status == 202
        reply = await self.call(
            "PUT",
            f"/v1/drivers/{driver_id}/status",
            f"driver:{driver_id}",
            json={"status": "available"},
        )
        assert reply.status == 200, reply.body


@pytest.fixture
async def live(redis_url: str) -> AsyncIterator[Client]:
    """One real instance (the production app and runner) on Redis, in this process.
    Immediate matching: the tests script ride steps on the driver a request's answer names."""
    settings = Settings(redis_url=redis_url, instance_id="rel", match_window_ms=0)
    async with running(settings) as inst:
        yield Client(inst.url, settings.jwt_secret, inst.session)


def assert_clean_error(reply: Reply, *codes: int) -> None:
    """A JSON error body, {error, message} (field: the one field at fault; a stale fix
    adds the stored seq and ts), and no stack trace."""
    assert reply.status in codes, (reply.status, reply.body)
    assert isinstance(reply.body, dict), reply.body
    allowed = {"error", "message", "field", "seq", "ts", "request_id"}
    assert {"error", "message", "request_id"} <= set(reply.body) <= allowed
    text = json.dumps(reply.body)
    for trace in ("Traceback", 'File \\"', '.py\\"'):
        assert trace not in text, text
