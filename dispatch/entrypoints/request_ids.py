"""Every request has an id, so that one request can be followed from nginx's access log
to every log line the instance wrote for it and to the answer the client got.

nginx sets `X-Request-Id` (or passes on a valid one a client sent); a request that comes
without one (straight to an instance) gets a fresh one here. The id is held in a
contextvar for the request's task, so every log line written while serving it carries
it (dispatch.entrypoints.logs), and it goes back in the `X-Request-Id` header of every
response and as `request_id` in every JSON error body."""

from __future__ import annotations

import contextvars
import re
import uuid

from aiohttp import web

from dispatch.entrypoints.errors import Handler

HEADER = "X-Request-Id"
# What an id may be: what nginx's $request_id is (32 hex digits) and what clients
# commonly send (UUIDs, ULIDs), nothing that could forge a log line or a header.
VALID = re.compile(r"[A-Za-z0-9._-]{1,64}")

current: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
KEY = web.RequestKey("request_id", str)


def new_id() -> str:
    return uuid.uuid4().hex


def accepted(sent: str | None) -> str:
    """The id a request goes by: the one sent, when valid, else a fresh one."""
    return sent if sent is not None and VALID.fullmatch(sent) else new_id()


def with_id(body: bytes, request_id: str) -> bytes:
    """A JSON error body (an object whose first key is "error") with the request's id
    added, unless it has one. Ids are [A-Za-z0-9._-]: nothing to escape."""
    if not body.startswith(b'{"error":') or not body.endswith(b"}") or b'"request_id"' in body:
        return body
    return body[:-1] + b',"request_id":"' + request_id.encode() + b'"}'


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: the id is set before anything may log, and error bodies made by the
    middlewares inside get it."""
    request_id = accepted(request.headers.get(HEADER))
    request[KEY] = request_id
    token = current.set(request_id)
    try:
        response = await handler(request)
    finally:
        current.reset(token)
    if response.status >= 400 and isinstance(response, web.Response):
        body = response.body
        if isinstance(body, bytes) and response.content_type == "application/json":
            response.body = with_id(body, request_id)
    return response


async def stamp(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, streams and WebSocket upgrades included."""
    request_id = request.get(KEY)
    if request_id is not None:
        response.headers[HEADER] = request_id
