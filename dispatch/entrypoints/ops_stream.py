"""GET /v1/ops/stream: the ops map's live view as server-sent events, for ops tokens only:
`event: snapshot` first, then `event: delta` at most once a second (ops_wire.py), and a
`: keep-alive` comment when nothing changed for a while. A stream the page should not
reopen ends with `event: end` saying why: its token expired, or a newer stream of the
same token replaced it (so two tabs over the cap do not take turns knocking each other
off)."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from dispatch.domain.principals import Role
from dispatch.entrypoints import appkeys
from dispatch.entrypoints.auth import stream_principal
from dispatch.entrypoints.ops_feed import FEED, Page
from dispatch.entrypoints.streams import next_message
from dispatch.service_layer.errors import Forbidden

KEEPALIVE_S = 15.0


async def ops_stream(request: web.Request) -> web.StreamResponse:
    actor, expires = stream_principal(request)
    if actor.role is not Role.OPS:
        raise Forbidden("the ops stream is for ops tokens")
    app = request.app
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass events through unbuffered
        }
    )
    await resp.prepare(request)
    streams = app[appkeys.STREAMS]
    with app[FEED].watch() as page, streams.held(actor.subject) as replaced:
        try:
            await _follow(resp, page, expires, streams.closing, replaced)
        except (ConnectionResetError, ConnectionError):
            pass  # the page went away
    return resp


async def _follow(
    resp: web.StreamResponse,
    page: Page,
    expires: float,
    closing: asyncio.Event,
    replaced: asyncio.Event,
) -> None:
    while True:
        wait_s = min(KEEPALIVE_S, expires - time.time())
        if wait_s <= 0:
            await resp.write(end_frame("expired"))
            return
        data = await next_message(page.frames.get, (closing, replaced), wait_s)
        if data is False:
            if replaced.is_set():
                await resp.write(end_frame("replaced"))
            return  # at shutdown the page reconnects, to another instance if need be
        await resp.write(data or b": keep-alive\n\n")


def end_frame(reason: str) -> bytes:
    return b'event: end\ndata: {"reason":"' + reason.encode() + b'"}\n\n'
