"""Structured service logs: JSON lines with the request's id, and no token or secret in
any line, whatever wrote it."""

from __future__ import annotations

import io
import logging

import orjson

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.domain.principals import parse_subject
from dispatch.entrypoints import request_ids
from dispatch.entrypoints.logs import handler, redact
from dispatch.settings import Settings

SECRET = "unit-secret-0123456789-0123456789-abcdef"


def capture(settings: Settings) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    log = logging.getLogger("tests.logs")
    log.handlers[:] = [handler(settings, out)]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return log, out


def test_lines_are_json_with_the_request_id_inside_a_request_only() -> None:
    log, out = capture(Settings(jwt_secret=SECRET))
    log.info("outside")
    token = request_ids.current.set("abc-123")
    try:
        log.warning("inside %s", "a request")
    finally:
        request_ids.current.reset(token)
    first, second = (orjson.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "outside" and "request_id" not in first
    assert second == {
        "ts": second["ts"],
        "level": "WARNING",
        "logger": "tests.logs",
        "message": "inside a request",
        "request_id": "abc-123",
    }


def test_no_token_or_secret_reaches_a_line() -> None:
    log, out = capture(Settings(jwt_secret=SECRET))
    jwt = TokenCodec(SECRET).issue(parse_subject("rider:r7"), 60)
    log.info("header Authorization: Bearer %s", jwt)
    log.info("url /v1/rides/x/events?access_token=%s&x=1", jwt)
    log.info("a bare token %s and the secret %s", jwt, SECRET)
    log.info("a bearer of anything: bearer opaque.value-42")
    try:
        raise ValueError(f"bad token {jwt} with {SECRET}")
    except ValueError:
        log.exception("failed")
    text = out.getvalue()
    assert jwt not in text and SECRET not in text and "opaque.value-42" not in text
    assert jwt.split(".")[2] not in text  # not even the signature alone
    lines = [orjson.loads(line) for line in text.splitlines()]
    assert len(lines) == 5 and "[redacted]" in lines[4]["exc"]
    assert "x=1" in lines[1]["message"]  # the rest of the line stays


def test_text_format_too() -> None:
    log, out = capture(Settings(jwt_secret=SECRET, log_format="text"))
    log.info("plain %s", SECRET)
    assert out.getvalue().rstrip().endswith("tests.logs [-]: plain [redacted]")


def test_request_ids_accepted_or_replaced() -> None:
    assert request_ids.accepted("0123456789abcdef0123456789abcdef") == (
        "0123456789abcdef0123456789abcdef"
    )
    for bad in (None, "", "a b", "x" * 65, "id\r\nX-Evil: 1", "é"):
        fresh = request_ids.accepted(bad)
        assert fresh != bad and request_ids.VALID.fullmatch(fresh)
    assert redact("nothing here") == "nothing here"


def test_error_bodies_get_the_id_once() -> None:
    body = b'{"error":"not_found","message":"no"}'
    assert orjson.loads(request_ids.with_id(body, "r1"))["request_id"] == "r1"
    already = b'{"error":"x","message":"m","request_id":"r0"}'
    assert request_ids.with_id(already, "r1") == already
    assert request_ids.with_id(b'{"status":"ok"}', "r1") == b'{"status":"ok"}'
