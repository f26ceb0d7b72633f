"""JSON in and out: orjson only (it refuses NaN and Infinity), bodies read within limits."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from dispatch.entrypoints.schemas import InvalidBody


class BodyTooLarge(Exception):
    pass


class MalformedJson(Exception):
    pass


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def raw_json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def error_response(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": code, "message": message}, status)


def loads(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"body is not valid JSON: {exc}") from exc


async def read_json_object(request: web.Request, limit: int) -> tuple[dict[str, Any], bytes]:
    """The body as a JSON object, and its raw bytes (for idempotency fingerprints)."""
    if request.content_length is not None and request.content_length > limit:
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
    raw = b"".join(chunks)
    if len(raw) > limit:
        raise BodyTooLarge(f"body above the limit of {limit} bytes")
    data = loads(raw)
    if not isinstance(data, dict):
        raise InvalidBody("body must be a JSON object")
    return data, raw
