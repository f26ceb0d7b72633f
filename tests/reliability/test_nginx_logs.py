"""Bearer tokens stay out of nginx's access log. Browsers cannot set headers on a
WebSocket or an EventSource, so those carry the token as `?access_token=`; a log line
with the query string would hand every driver's and rider's token to whoever reads logs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from loadtest.nginx_proc import NginxProcess, nginx_available
from loadtest.redis_procs import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.nginx,
    pytest.mark.skipif(not nginx_available(), reason="nginx is not installed"),
]
SECRET = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.c2lnbmF0dXJl"


@pytest.fixture
async def nginx() -> AsyncIterator[NginxProcess]:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"ok": True}, headers={"X-Instance-Id": "up"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    proc = NginxProcess([f"127.0.0.1:{port}"], free_port())
    await asyncio.to_thread(proc.start)
    try:
        yield proc
    finally:
        await asyncio.to_thread(proc.stop)
        await runner.cleanup()


async def test_tokens_in_query_strings_never_reach_the_access_log(nginx: NginxProcess) -> None:
    async with aiohttp.ClientSession() as http:
        for path in (
            f"/v1/drivers/d1/stream?access_token={SECRET}",
            f"/v1/rides/r_{'0' * 32}/events?access_token={SECRET}",
            f"/v1/nearby?lat=1&lng=2&access_token={SECRET}",
        ):
            async with http.get(nginx.url + path) as resp:
                assert resp.status == 200
    assert nginx.proc is not None
    nginx.proc.terminate()  # nginx flushes its buffered log on exit
    await asyncio.to_thread(nginx.proc.wait, 10)
    text = nginx.access_log.read_text()
    assert "/v1/drivers/d1/stream" in text  # the requests are logged...
    assert SECRET not in text  # ...without their tokens
    assert "access_token" not in text
