"""The stack's nginx as an API gateway, in real nginx in front of a real dispatch
instance: request ids from the gateway to the instance and back, per-address limits
answered as JSON 429, and every error nginx itself makes in the service's JSON shape."""

from __future__ import annotations

import asyncio
import io
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import aiohttp
import orjson
import pytest

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.domain.principals import parse_subject
from dispatch.entrypoints.server import start
from dispatch.settings import Settings
from loadtest.nginx_conf import GatewayLimits
from loadtest.nginx_proc import NginxProcess, nginx_available
from loadtest.redis_procs import free_port

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.skipif(
        not nginx_available(), reason="nginx is not installed (scripts/test installs it)"
    ),
]

SECRET = "gateway-secret-0123456789-0123456789-abc"
TIGHT = GatewayLimits(
    rate_locations="100r/s", burst_locations=50,
    rate_rides="1r/s", burst_rides=3,
    rate_reads="100r/s", burst_reads=50,
    conn_per_addr=3,
)  # fmt: skip


@dataclass
class Gateway:
    nginx: NginxProcess
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.nginx.url

    async def call(
        self, method: str, path: str, subject: str | None = None, **kw: object
    ) -> tuple[int, dict[str, object], aiohttp.ClientResponse]:
        headers = dict(kw.pop("headers", {}) or {})  # type: ignore[call-overload]
        if subject is not None:
            token = TokenCodec(SECRET).issue(parse_subject(subject), 600)
            headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(method, self.url + path, headers=headers, **kw) as r:  # type: ignore[arg-type]
            raw = await r.read()
            assert r.content_type == "application/json", (r.status, raw[:200])
            return r.status, orjson.loads(raw), r


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    settings = replace(Settings(jwt_secret=SECRET, instance_id="gw-1"), port=0)
    runner, port = await start(settings)
    nginx = NginxProcess([f"127.0.0.1:{port}"], free_port(), limits=TIGHT, limit_exempt=())
    await asyncio.to_thread(nginx.start)
    try:
        async with aiohttp.ClientSession() as http:
            yield Gateway(nginx, http)
    finally:
        await asyncio.to_thread(nginx.stop)
        await runner.cleanup()


def access_log_rids(nginx: NginxProcess) -> list[str]:
    text = nginx.access_log.read_text() if nginx.access_log.exists() else ""
    return re.findall(r"rid=(\S+)", text)


async def test_the_request_id_goes_from_nginx_to_the_instance_and_back(gateway: Gateway) -> None:
    status, _, resp = await gateway.call("GET", "/healthz")
    rid = resp.headers["X-Request-Id"]
    assert status == 200 and re.fullmatch(r"[0-9a-f]{32}", rid)  # nginx's $request_id
    # a valid id of the client's own passes through, into an error body too
    sent = {"X-Request-Id": "client-7.a_b"}
    status, body, resp = await gateway.call("GET", "/v1/rides/r_x", headers=sent)
    assert status == 401 and body["request_id"] == "client-7.a_b"
    assert resp.headers["X-Request-Id"] == "client-7.a_b"
    assert resp.headers["X-Instance-Id"] == "gw-1"
    # one that is not valid is replaced by nginx's own
    _, _, resp = await gateway.call("GET", "/healthz", headers={"X-Request-Id": "a\tb"})
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-Id"])

    async def logged() -> list[str]:
        for _ in range(50):  # the access log is flushed every second
            rids = access_log_rids(gateway.nginx)
            if "client-7.a_b" in rids:
                return rids
            await asyncio.sleep(0.1)
        return access_log_rids(gateway.nginx)

    rids = await logged()
    assert rid in rids and "client-7.a_b" in rids


async def test_ride_requests_from_one_address_are_limited_apart_from_fixes(
    gateway: Gateway,
) -> None:
    pickup = {"pickup": {"lat": 52.52, "lng": 13.40}}
    answers = await asyncio.gather(
        *(gateway.call("POST", "/v1/quotes", f"rider:g{i}", json=pickup) for i in range(10))
    )
    limited = [(body, r) for status, body, r in answers if status == 429]
    served = [status for status, _, _ in answers if status != 429]
    assert 3 <= len(served) <= 5 and len(limited) >= 5  # the burst (and a refill or so)
    for body, resp in limited:  # nginx's own 429, in the service's shape
        assert body["error"] == "rate_limited" and body["message"]
        assert body["request_id"] == resp.headers["X-Request-Id"]
        assert resp.headers["Retry-After"] == "1"
        assert "X-Instance-Id" not in resp.headers  # refused at the gateway
    # location updates and reads have budgets of their own
    fix = {"lat": 52.52, "lng": 13.40, "ts": 1, "seq": 1}
    status, _, _ = await gateway.call("POST", "/v1/drivers/d1/location", "driver:d1", json=fix)
    assert status in (202, 409, 422)
    status, _, _ = await gateway.call("GET", "/healthz")
    assert status == 200


async def test_open_connections_per_address_are_capped_websockets_included(
    gateway: Gateway,
) -> None:
    token = TokenCodec(SECRET).issue(parse_subject("driver:d1"), 600)
    sockets = []
    try:
        for _ in range(3):  # the cap: 3 requests in progress per address
            url = f"{gateway.url}/v1/drivers/d1/stream?access_token={token}"
            sockets.append(await gateway.http.ws_connect(url))
        status, body, resp = await gateway.call("GET", "/healthz")
        assert status == 429 and body["error"] == "rate_limited"
        assert resp.headers["Retry-After"] == "1"
    finally:
        for ws in sockets:
            await ws.close()
    for _ in range(50):  # the slots free as the sockets close
        status, _, _ = await gateway.call("GET", "/healthz")
        if status == 200:
            return
        await asyncio.sleep(0.05)
    pytest.fail("connections stayed counted after their sockets closed")


def raw(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return int(lines[0].split()[1]), headers, body


async def test_errors_nginx_makes_are_json(gateway: Gateway) -> None:
    port = gateway.nginx.port
    cases = [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, "bad_request"),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
            431,
            "headers_too_large",
        ),
    ]
    cases.append(
        (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431, "headers_too_large")
    )
    for request, status, code in cases:
        got, headers, body = await asyncio.to_thread(raw, port, request)
        assert got == status, body
        assert headers["content-type"] == "application/json"
        error = orjson.loads(body)
        assert error["error"] == code and error["request_id"] == headers["x-request-id"]
    # a body above the gateway's client_max_body_size (1 MiB)
    status, error, resp = await gateway.call("POST", "/v1/rides", data=io.BytesIO(b"x" * 1_100_000))
    assert status == 413 and error["error"] == "body_too_large"
    assert error["request_id"] == resp.headers["X-Request-Id"]


async def test_a_dead_upstream_is_a_json_502() -> None:
    dead = free_port()  # nothing listens there
    nginx = NginxProcess([f"127.0.0.1:{dead}"], free_port(), limit_exempt=())
    await asyncio.to_thread(nginx.start)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(nginx.url + "/v1/rides/r_x") as r:
                body = await r.json()
                assert r.status == 502 and body["error"] == "bad_gateway"
                assert body["request_id"] == r.headers["X-Request-Id"]
                assert r.headers["Retry-After"] == "1"
    finally:
        await asyncio.to_thread(nginx.stop)
