"""Area events as they reach this instance (from the area event log every instance
follows): the ops stream GET /v1/areas/events, the driver WebSocket's area and queue
frames, and the airport queue's ops view."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from aiohttp import web

from dispatch.domain.principals import Role
from dispatch.entrypoints import appkeys, background
from dispatch.entrypoints import areas_contract as ac
from dispatch.entrypoints.auth import principal, stream_principal
from dispatch.entrypoints.jsonio import json_response
from dispatch.entrypoints.views_areas import area_id
from dispatch.service_layer.airport import queue_of
from dispatch.service_layer.errors import Forbidden
from dispatch.service_layer.geofence import OPS_TOPIC, follow

KEEPALIVE_S = 15.0
TICK_S = 0.5


async def get_queue(request: web.Request) -> web.Response:
    deps = request.app[appkeys.RUNTIME].deps
    ident = area_id(request)
    order, held = await queue_of(deps, principal(request), ident)
    return json_response(
        ac.AirportQueue(
            area_id=ident,
            drivers=[
                ac.QueuedDriver(driver_id=d, position=i + 1, offered_ride=held.get(d))
                for i, d in enumerate(order)
            ],
        )
    )


async def area_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events for ops tokens: `event: area` per crossing, `event: queue` per
    change of an airport queue's order, from every instance."""
    actor, expires = stream_principal(request)
    if actor.role is not Role.OPS:
        raise Forbidden("the area event stream is for ops tokens")
    hub = request.app[appkeys.RUNTIME].deps.fences.hub
    closing = request.app[appkeys.STREAMS].closing
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass events through unbuffered
        }
    )
    async with hub.listen(OPS_TOPIC) as events:
        await resp.prepare(request)
        with contextlib.suppress(ConnectionResetError, ConnectionError):
            await resp.write(b": area events\n\n")
            quiet_s = 0.0
            while not closing.is_set():
                if expires <= time.time():
                    break  # the token that opened the stream has expired
                transport = request.transport
                if transport is None or transport.is_closing():
                    break  # the client went away
                try:  # a short tick: shutdown and a client gone are noticed within it
                    event = await asyncio.wait_for(events.get(), TICK_S)
                except TimeoutError:
                    quiet_s += TICK_S
                    if quiet_s >= KEEPALIVE_S:
                        await resp.write(b": keep-alive\n\n")
                        quiet_s = 0.0
                    continue
                quiet_s = 0.0
                kind = str(event["type"]).encode()
                await resp.write(b"event: " + kind + b"\ndata: " + orjson.dumps(event) + b"\n\n")
    return resp


async def driver_area_frames(
    request: web.Request, driver_id: str, send: Callable[[bytes], Awaitable[None]]
) -> None:
    """Forever: this driver's area crossings and queue places, as WebSocket frames."""
    hub = request.app[appkeys.RUNTIME].deps.fences.hub
    async with hub.listen(f"driver:{driver_id}") as events:
        while True:
            await send(orjson.dumps(await events.get()))


async def area_event_follower(app: web.Application) -> AsyncIterator[None]:
    """Every instance follows the area event log to reach its own listeners."""
    fences = app[appkeys.RUNTIME].deps.fences
    async with background.running(("area-event-follower", follow(fences.log, fences.hub))):
        yield
