"""Every response carries X-Request-Id (the one sent, when valid, else a fresh one), every
JSON error body the same id as request_id, and every log line written while serving a
request that id, with no token in it."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.domain.principals import parse_subject
from dispatch.entrypoints.app import create_app
from dispatch.entrypoints.logs import handler
from dispatch.entrypoints.request_ids import VALID
from dispatch.settings import Settings

SECRET = "ids-secret-0123456789-0123456789-abcdef"
log = logging.getLogger("tests.request_ids")


async def _logs_and_fails(request: web.Request) -> web.Response:
    log.info("working on it for %s", request.headers.get("Authorization"))
    raise RuntimeError(f"boom with {request.headers.get('Authorization')}")


@pytest.fixture
async def client() -> AsyncIterator[tuple[TestClient[web.Request, web.Application], io.StringIO]]:
    settings = Settings(jwt_secret=SECRET, instance_id="ids")
    app = create_app(settings)
    app.router.add_get("/test/logs-and-fails", _logs_and_fails)
    out = io.StringIO()
    root = logging.getLogger()
    ours = handler(settings, out)
    root.addHandler(ours)
    old_level = root.level
    root.setLevel(logging.INFO)
    async with TestClient(TestServer(app)) as c:
        yield c, out
    root.removeHandler(ours)
    root.setLevel(old_level)


def bearer(subject: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + TokenCodec(SECRET).issue(parse_subject(subject), 60)}


async def test_every_answer_has_an_id_and_errors_carry_it(client: tuple) -> None:  # type: ignore[type-arg]
    c, _ = client
    ok = await c.get("/healthz")
    fresh = ok.headers["X-Request-Id"]
    assert ok.status == 200 and VALID.fullmatch(fresh) and len(fresh) == 32
    sent = {"X-Request-Id": "client-chosen.id_1"}
    for method, path, headers in [
        ("GET", "/nowhere", sent),
        ("GET", "/v1/drivers/d1", sent),  # no token: 401
        ("POST", "/v1/rides", {**sent, **bearer("driver:d1")}),  # 403
        ("POST", "/v1/rides", {**sent, **bearer("rider:r1")}),  # no body: 400/422
    ]:
        resp = await c.request(method, path, headers=headers)
        body = orjson.loads(await resp.read())
        assert resp.status >= 400 and resp.headers["X-Request-Id"] == "client-chosen.id_1"
        assert body["request_id"] == "client-chosen.id_1" and body["error"], body
    forged = await c.get("/healthz", headers={"X-Request-Id": "two words"})
    assert forged.headers["X-Request-Id"] != "two words"
    # the OpenAPI document allows request_id in error bodies (schemathesis checks them)
    doc = orjson.loads(await (await c.get("/openapi.json")).read())
    assert "request_id" in doc["components"]["schemas"]["Error"]["properties"]


async def test_every_log_line_of_a_request_has_its_id_and_no_token(client: tuple) -> None:  # type: ignore[type-arg]
    c, out = client
    auth = bearer("rider:r1")
    resp = await c.get("/test/logs-and-fails", headers={**auth, "X-Request-Id": "trace-42"})
    body = orjson.loads(await resp.read())
    assert resp.status == 500 and body == {
        "error": "internal",
        "message": "internal error",
        "request_id": "trace-42",
    }
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    mine = [line for line in lines if line.get("request_id") == "trace-42"]
    assert {line["logger"] for line in mine} >= {"tests.request_ids", "dispatch.entrypoints.errors"}
    token = auth["Authorization"].removeprefix("Bearer ")
    assert token not in out.getvalue() and SECRET not in out.getvalue()


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response(text="never")


async def test_a_request_past_its_deadline_is_a_503_and_the_next_one_is_served() -> None:
    app = create_app(Settings(jwt_secret=SECRET, request_timeout_s=0.3))
    app.router.add_get("/test/slow", _slow)
    async with TestClient(TestServer(app)) as c:
        started = time.monotonic()
        resp = await c.get("/test/slow", headers={"X-Request-Id": "slow-1"})
        took = time.monotonic() - started
        body = orjson.loads(await resp.read())
        assert resp.status == 503 and body["error"] == "backend_unavailable", body
        assert body["request_id"] == "slow-1" and resp.headers["X-Instance-Id"]
        assert 0.3 <= took < 1.5  # the deadline's checks are 0.015 s apart here
        assert (await c.get("/healthz")).status == 200  # nothing left cancelled
        metrics = (await (await c.get("/metrics")).read()).decode()
        assert 'route="/test/slow",status="503"} 1.0' in metrics
        assert "dispatch_backend_errors_total 1.0" in metrics


async def test_streams_and_websocket_upgrades_carry_both_ids(client: tuple) -> None:  # type: ignore[type-arg]
    c, _ = client
    sent = {"X-Request-Id": "stream-7"}
    ws = await c.ws_connect("/v1/drivers/d1/stream", headers={**bearer("driver:d1"), **sent})
    try:
        upgrade = ws._response.headers
        assert upgrade["X-Request-Id"] == "stream-7" and upgrade["X-Instance-Id"] == "ids"
    finally:
        await ws.close()
    async with c.get("/v1/ops/stream", headers={**bearer("ops:o1"), **sent}) as events:
        assert events.status == 200
        assert events.headers["X-Request-Id"] == "stream-7"
        assert events.headers["X-Instance-Id"] == "ids"
    ok = await c.get("/healthz")  # and an ordinary answer, the id made here
    assert VALID.fullmatch(ok.headers["X-Request-Id"]) and ok.headers["X-Instance-Id"] == "ids"
