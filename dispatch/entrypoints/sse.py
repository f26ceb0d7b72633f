"""GET /v1/rides/{id}/events: the rider's live view of a ride as server-sent events, one
`data: <ride json>` per change, starting with the current state, ending after a final one."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from dispatch.domain.principals import Role
from dispatch.domain.rides import TERMINAL, Ride
from dispatch.entrypoints import appkeys, schemas
from dispatch.entrypoints.auth import stream_principal
from dispatch.entrypoints.streams import next_message
from dispatch.entrypoints.wire import ride_event
from dispatch.service_layer import ride_steps
from dispatch.service_layer.errors import Forbidden
from dispatch.service_layer.notices import ride_topic
from dispatch.service_layer.ports import Subscription

KEEPALIVE_S = 15.0


async def ride_events(request: web.Request) -> web.StreamResponse:
    actor, expires = stream_principal(request)
    ride_id = schemas.ride_id(request.match_info["ride_id"])
    app = request.app
    deps = app[appkeys.RUNTIME].deps
    # Subscribe before reading the state, so no change falls between the two.
    async with deps.notifier.subscribe(ride_topic(ride_id)) as subscription:
        ride = await ride_steps.get_ride(deps, actor, ride_id)
        if actor.role is not Role.RIDER:
            raise Forbidden("the event stream is for the ride's rider")
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: pass events through unbuffered
            }
        )
        await resp.prepare(request)
        gauge = app[appkeys.METRICS].event_streams
        streams = app[appkeys.STREAMS]
        gauge.inc()
        try:
            with streams.held(actor.subject) as replaced:
                await _follow(resp, subscription, ride, expires, (streams.closing, replaced))
        except (ConnectionResetError, ConnectionError):
            pass  # the rider went away
        finally:
            gauge.inc(-1)
        return resp


async def _follow(
    resp: web.StreamResponse,
    subscription: Subscription,
    ride: Ride,
    expires: float,
    stops: tuple[asyncio.Event, ...],
) -> None:
    """Write the ride, then each newer version of it, until it ends or the stream must."""
    await resp.write(ride_event(ride))
    version, finished = ride.version, ride.status in TERMINAL
    while not finished:
        wait_s = min(KEEPALIVE_S, expires - time.time())
        if wait_s <= 0:
            break  # the token that opened the stream has expired
        msg = await next_message(subscription.get, stops, wait_s)
        if msg is False:
            break
        if msg is None:
            await resp.write(b": keep-alive\n\n")
            continue
        if msg.ride.version <= version:
            continue  # an older change delivered late: the client has newer
        version, finished = msg.ride.version, msg.ride.status in TERMINAL
        await resp.write(ride_event(msg.ride))
