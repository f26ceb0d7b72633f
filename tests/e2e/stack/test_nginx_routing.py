"""The generated nginx config in real nginx: what it retries, what it never re-sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from loadtest.nginx_proc import NginxProcess, nginx_available
from loadtest.redis_procs import free_port

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.skipif(
        not nginx_available(), reason="nginx is not installed (scripts/test installs it)"
    ),
]


class DroppingUpstream:
    """Reads a whole request, then closes the connection unanswered: an instance dying mid-way."""

    def __init__(self) -> None:
        self.requests = 0
        self.port = free_port()
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        self.requests += 1
        writer.close()

    async def __aenter__(self) -> DroppingUpstream:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


async def _good_app(counter: list[str]) -> web.Application:
    async def any_request(request: web.Request) -> web.Response:
        await request.read()
        counter.append(request.path_qs)
        return web.json_response({"ok": True}, headers={"X-Instance-Id": "good"})

    async def stream(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str("echo:" + msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/v1/drivers/{id}/stream", stream)
    app.router.add_route("*", "/{tail:.*}", any_request)
    return app


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[str, DroppingUpstream, list[str]]]:
    good_hits: list[str] = []
    runner = web.AppRunner(await _good_app(good_hits))
    await runner.setup()
    good_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", good_port).start()
    async with DroppingUpstream() as bad:
        nginx = NginxProcess([f"127.0.0.1:{bad.port}", f"127.0.0.1:{good_port}"], free_port())
        await asyncio.to_thread(nginx.start)
        try:
            yield nginx.url, bad, good_hits
        finally:
            await asyncio.to_thread(nginx.stop)
    await runner.cleanup()


async def _statuses(
    url: str, n: int, method: str, headers: dict[str, str] | None = None
) -> list[int]:
    out = []
    async with aiohttp.ClientSession() as s:
        for i in range(n):
            h = {k: f"{v}-{i}" for k, v in (headers or {}).items()}
            async with s.request(method, url, json={"i": i}, headers=h) as r:
                out.append(r.status)
    return out


async def test_a_post_without_idempotency_key_is_never_resent_to_another_instance(
    proxied: tuple[str, DroppingUpstream, list[str]],
) -> None:
    url, bad, good = proxied
    statuses = await _statuses(url + "/v1/rides", 6, "POST")
    assert bad.requests >= 1
    assert statuses.count(502) == bad.requests  # each dropped POST failed, none went on
    assert bad.requests + len(good) == 6  # every POST reached exactly one instance


async def test_a_post_with_idempotency_key_is_retried_on_the_next_instance(
    proxied: tuple[str, DroppingUpstream, list[str]],
) -> None:
    url, bad, good = proxied
    statuses = await _statuses(url + "/v1/rides?a=1", 6, "POST", {"Idempotency-Key": "k"})
    assert bad.requests >= 1
    assert statuses == [200] * 6
    assert good == ["/v1/rides?a=1"] * 6  # the original URI, query included


async def test_a_get_is_retried_on_the_next_instance(
    proxied: tuple[str, DroppingUpstream, list[str]],
) -> None:
    url, bad, good = proxied
    statuses = await _statuses(url + "/v1/drivers/d1?x=1", 6, "GET")
    assert bad.requests >= 1
    assert statuses == [200] * 6


async def test_a_websocket_upgrade_passes_through(
    proxied: tuple[str, DroppingUpstream, list[str]],
) -> None:
    url, _bad, _good = proxied
    async with aiohttp.ClientSession() as s:
        for _ in range(3):  # whichever instance the first attempt hits, one upgrade succeeds
            try:
                async with s.ws_connect(url + "/v1/drivers/d1/stream") as ws:
                    await ws.send_str("hi")
                    msg = await ws.receive(timeout=5)
                    assert msg.data == "echo:hi"
                    return
            except aiohttp.WSServerHandshakeError:
                continue
    pytest.fail("no WebSocket upgrade went through nginx")
