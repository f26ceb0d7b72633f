"""JSON in and out: bodies read within their limits, responses encoded once."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from aiohttp import web


class BodyTooLarge(Exception):
    pass


class MalformedJson(Exception):
    pass


def json_response(data: Any, status: int = 200) -> web.Response:
    """orjson for plain data, msgspec for the contract's Structs."""
    body = msgspec.json.encode(data) if isinstance(data, msgspec.Struct) else orjson.dumps(data)
    return web.Response(body=body, status=status, content_type="application/json")


def raw_json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    return json_response(body, status)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, or BodyTooLarge past `limit` bytes (checked before reading when the
    client announced its length, and while reading when it did not)."""
    length = request.content_length  # parsed from the header on every call: once here
    if length is not None and length > limit:
        raise BodyTooLarge(f"body above the limit of {limit} bytes")
    # read(n) returns what has arrived so far, up to n: loop until the end or the limit,
    # or a body that comes in pieces is cut short.
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size == length:  # all it announced (aiohttp frames the body by it): no read for the end
            break
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(raw) > limit:
        raise BodyTooLarge(f"body above the limit of {limit} bytes")
    return raw
