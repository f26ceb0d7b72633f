"""TLS termination at the stack's nginx: a certificate the stack makes for 127.0.0.1, the
API over HTTPS (HTTP/1.1 and HTTP/2) to a real instance, WebSockets over wss."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import orjson
import pytest

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.domain.principals import parse_subject
from dispatch.entrypoints.server import start
from dispatch.settings import Settings
from loadtest.nginx_proc import NginxProcess, nginx_available
from loadtest.redis_procs import free_port
from loadtest.tls import openssl_available

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.skipif(
        not (nginx_available() and openssl_available()),
        reason="nginx and openssl are needed (scripts/test installs nginx)",
    ),
]
SECRET = "tls-secret-0123456789-0123456789-abcdef"


@pytest.fixture
async def tls_nginx() -> AsyncIterator[NginxProcess]:
    runner, port = await start(replace(Settings(jwt_secret=SECRET, instance_id="tls-1"), port=0))
    nginx = NginxProcess([f"127.0.0.1:{port}"], free_port(), tls_port=free_port())
    await asyncio.to_thread(nginx.start)
    try:
        yield nginx
    finally:
        await asyncio.to_thread(nginx.stop)
        await runner.cleanup()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is needed for HTTP/2")
async def test_http2_over_tls_with_the_generated_certificate(tls_nginx: NginxProcess) -> None:
    assert tls_nginx.tls_cert is not None
    out = await asyncio.to_thread(
        subprocess.run,
        [
            "curl", "-sS", "--http2", "--cacert", str(tls_nginx.tls_cert),
            "-o", "-", "-w", "\\n%{http_version} %{http_code}",
            "-H", "X-Request-Id: over-tls-1",
            tls_nginx.tls_url + "/v1/rides/r_x",
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr  # the certificate verified for 127.0.0.1
    body, status_line = out.stdout.rsplit("\n", 1)
    assert status_line == "2 401"  # HTTP/2, the instance's own answer
    error = orjson.loads(body)
    assert error["error"] == "unauthorized" and error["request_id"] == "over-tls-1"


async def test_https_and_wss_from_a_client_that_trusts_the_certificate(
    tls_nginx: NginxProcess,
) -> None:
    context = ssl.create_default_context(cafile=str(tls_nginx.tls_cert))
    token = TokenCodec(SECRET).issue(parse_subject("driver:d1"), 600)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
        async with http.get(tls_nginx.tls_url + "/healthz") as resp:
            assert resp.status == 200 and resp.headers["X-Instance-Id"] == "tls-1"
        url = tls_nginx.tls_url.replace("https", "wss") + "/v1/drivers/d1/stream"
        async with http.ws_connect(url, headers={"Authorization": f"Bearer {token}"}) as ws:
            await ws.send_json({"type": "ping"})
            while True:
                frame = await ws.receive_json(timeout=5)
                if frame["type"] == "pong":
                    break
    # and a client that does not trust it is refused
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(tls_nginx.tls_url + "/healthz")
