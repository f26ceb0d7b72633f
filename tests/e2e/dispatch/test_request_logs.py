"""A real `dispatch serve` at DEBUG: every line it logs is a JSON object, and no token it
was sent (in a header, in ?access_token=, in bytes that did not parse) appears in any."""

from __future__ import annotations

import signal
import socket

import aiohttp
import orjson
import pytest

from .conftest import serve
from .test_whole_ride import auth


@pytest.mark.slow
async def test_logs_are_json_lines_without_tokens() -> None:
    served = serve("--instance-id", "e2e-logs", env={"DISPATCH_LOG_LEVEL": "DEBUG"})
    try:
        good = auth("rider:r1")["Authorization"].removeprefix("Bearer ")
        forged = good[:-4] + "AAAA"  # a bad signature: refused, and maybe logged
        async with aiohttp.ClientSession() as http:
            for token in (good, forged):
                headers = {"Authorization": f"Bearer {token}", "X-Request-Id": "e2e-trace"}
                async with http.get(f"{served.url}/v1/rides/r_x", headers=headers) as resp:
                    assert resp.headers["X-Request-Id"] == "e2e-trace"
                    body = await resp.json()
                    assert body["request_id"] == "e2e-trace"
                url = f"{served.url}/v1/rides/r_x/events?access_token={token}"
                async with http.get(url) as resp:
                    assert resp.status in (401, 403, 404)
                async with http.get(f"{served.url}/v1/drivers/d1/stream?access_token={token}"):
                    pass
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
            sock.sendall(
                b"GET / HTTP/1.1\r\nAuthorization: Bearer " + good.encode() + b"\x00\r\n\r\n"
            )
            while sock.recv(65536):
                pass
    finally:
        served.stop(signal.SIGTERM)
    logged = [line for line in served.output if not line.startswith("dispatch listening")]
    assert logged, served.output  # at least the shutdown line
    for line in logged:
        record = orjson.loads(line)  # each line one JSON object
        assert {"ts", "level", "logger", "message"} <= set(record)
    text = "".join(served.output)
    assert good not in text and forged not in text
    assert good.split(".")[2] not in text  # not even a signature
