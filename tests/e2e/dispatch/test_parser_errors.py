"""aiohttp's own parser errors, sent as raw bytes to a real `dispatch serve`, are answered
in the service's JSON error shape, never aiohttp's plain text, and quote nothing sent."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator

import orjson
import pytest

from .conftest import Served, serve


@pytest.fixture(scope="module")
def instance() -> Iterator[Served]:
    served = serve("--instance-id", "e2e-parser")
    yield served
    served.stop(signal.SIGKILL if served.proc.poll() is None else signal.SIGTERM)


# Each: raw request bytes, the status and error code expected.
_HOST = b"Host: x\r\n"
_TOKEN = b"Authorization: Bearer secret"
CASES = {
    "bad method": (b"FR@B / HTTP/1.1\r\n" + _HOST + b"\r\n", 400, "bad_request"),
    "NUL in a header": (
        b"GET /healthz HTTP/1.1\r\n" + _HOST + b"X-A: a\x00b\r\n\r\n", 400, "bad_request"
    ),
    "malformed request line": (
        b"GET /healthz HTTP/1.1 extra\r\n" + _HOST + b"\r\n", 400, "bad_request"
    ),
    "not HTTP at all": (b"\x16\x03\x01\x02\x00\x01\xfc\x03\x03\r\n\r\n", 400, "bad_request"),
    "oversized header": (
        b"GET /healthz HTTP/1.1\r\n" + _HOST + _TOKEN + b"A" * 20_000 + b"\r\n\r\n",
        431,
        "headers_too_large",
    ),
    "oversized request line": (
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n" + _HOST + b"\r\n", 431, "headers_too_large"
    ),
}  # fmt: skip


def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):  # the server closes after a parser error
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return status, headers, body


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_parser_errors_are_json(instance: Served, case: str) -> None:
    raw, status, code = CASES[case]
    got, headers, body = exchange(instance.port, raw)
    assert got == status, body
    assert headers["content-type"].startswith("application/json")
    error = orjson.loads(body)
    assert error["error"] == code and isinstance(error["message"], str)
    assert b"secret" not in body and b"AAAA" not in body  # nothing the client sent
    # and the instance goes on serving
    ok, _, _ = exchange(
        instance.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert ok == 200
    assert "secret" not in "".join(instance.output)  # nor in the log
