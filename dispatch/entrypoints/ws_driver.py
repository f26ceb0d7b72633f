"""GET /v1/drivers/{id}/stream: the driver app's WebSocket.

Client frames: location (acked with its seq and accepted|stale), locations (fixes the app
buffered, acked as its newest fix), accept, decline, ping.
Server frames: offers and ride updates for this driver from any instance (pub/sub),
acks, pongs and errors. A pending offer is sent again on every (re)connect.

An instance that cannot reach its backend refuses the upgrade (503, which the gateway
re-sends to another instance) and closes an open socket with 1013 at the first frame that
fails for that reason: the driver reconnects, and lands on an instance that can serve it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import WSCloseCode, WSMsgType, web
from msgspec import UnsetType

from dispatch.domain.principals import Principal
from dispatch.entrypoints import appkeys, contract, schemas
from dispatch.entrypoints.area_streams import driver_area_frames
from dispatch.entrypoints.auth import stream_principal
from dispatch.entrypoints.errors import RateLimited, to_error
from dispatch.entrypoints.wire import driver_frame, encode, offer_frame, ride_view
from dispatch.service_layer import drivers, ride_steps
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.notices import driver_topic
from dispatch.service_layer.ports import Subscription
from geoindex import UpsertResult

log = logging.getLogger(__name__)
HEARTBEAT_S = 20.0
REPLACED = 4000  # close code: this driver opened more sockets here than allowed
# Close code: this instance lost its backend; reconnect (through the gateway, elsewhere).
BACKEND_LOST = WSCloseCode.TRY_AGAIN_LATER  # 1013


def _ack(
    frame_id: str | UnsetType, fix: drivers.Fix, outcome: drivers.FixOutcome
) -> contract.Reply:
    if outcome.result is UpsertResult.ACCEPTED:
        return contract.AckFrame(id=frame_id, seq=fix.seq, status="accepted")
    stored = outcome.stored
    return contract.AckFrame(
        id=frame_id,
        seq=fix.seq,
        status="stale",
        stored_seq=None if stored is None else stored.seq,
        stored_ts=None if stored is None else stored.ts_ms,
    )


class _Socket:
    """One driver socket's frames, with what they need looked up once per socket."""

    def __init__(self, request: web.Request, deps: Deps, actor: Principal) -> None:
        self.deps, self.actor = deps, actor
        self._limiter = request.app[appkeys.LOCATION_LIMITER]
        self._metrics = request.app[appkeys.METRICS]

    def _check_rate(self, fixes: int) -> None:
        """The per-driver rate, one token per fix (as views_drivers.check_rate)."""
        if not self._limiter.allow(self.actor.id, fixes):
            self._metrics.refused("driver_updates")
            raise RateLimited(
                "too many location updates for this driver; slow down",
                self._limiter.retry_after_s(self.actor.id, fixes),
            )

    async def serve(self, ws: web.WebSocketResponse, sender: _Sender) -> None:
        """Answers the client's frames in order until the socket closes. Run as a task of
        its own: each await in a frame then resumes this loop directly, not through the
        request's handler and middlewares (a dozen coroutines, twice a frame)."""
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                reply = await self.answer(msg.data)
                await sender.send(encode(reply))
                if _backend_lost(reply):
                    await ws.close(code=BACKEND_LOST, message=b"backend_unavailable")
                    break
            elif msg.type is WSMsgType.BINARY:
                refused = contract.ErrorFrame(error="invalid_frame", message="send text frames")
                await sender.send(encode(refused))

    async def answer(self, data: str) -> contract.Reply:
        deps, actor = self.deps, self.actor
        try:
            match schemas.client_frame(data.encode()):
                case contract.LocationFrame() as frame:
                    fix = schemas.fix_of(frame)
                    self._check_rate(1)
                    outcome = await drivers.update_location(deps, actor, actor.id, fix)
                    return _ack(frame.id, fix, outcome)
                case contract.LocationsFrame() as frame:
                    fixes = [schemas.fix_of(f) for f in frame.fixes]
                    self._check_rate(len(fixes))
                    newest, outcome = await drivers.update_location_burst(
                        deps, actor, actor.id, fixes
                    )
                    return _ack(frame.id, newest, outcome)
                case contract.PingFrame() as frame:
                    return contract.PongFrame(id=frame.id)
                case contract.AcceptFrame() | contract.DeclineFrame() as frame:
                    accept = isinstance(frame, contract.AcceptFrame)
                    step = ride_steps.accept if accept else ride_steps.decline
                    ride = await step(deps, actor, schemas.ride_id(frame.ride_id))
                    view = ride_view(ride, for_other_driver=ride.driver_id != actor.id)
                    return contract.ResultFrame(id=frame.id, ride=view)
        except Exception as exc:
            error = to_error(exc)
            if error is None:
                log.exception("unhandled error on a driver WebSocket frame")
                return contract.ErrorFrame(error="internal", message="internal error")
            reply = contract.ErrorFrame(
                id=schemas.frame_id(data), error=error.code, message=error.message
            )
            if error.field is not None:
                reply.field = error.field
            return reply


def _backend_lost(reply: contract.Reply) -> bool:
    return isinstance(reply, contract.ErrorFrame) and reply.error == "backend_unavailable"


async def _check_backend(request: web.Request) -> None:
    """Before the upgrade, a ping within half a Redis call's timeout, as /readyz does (one
    shared by concurrent upgrades, a success good for a second): a socket opened here
    while the backend is out of reach could serve no frame."""
    app = request.app
    budget_s = app[appkeys.SETTINGS].redis_timeout_s / 2
    await app[appkeys.BACKEND_PROBE].check(app[appkeys.RUNTIME].ping, budget_s)


class _Sender:
    """Replies and pushed notifications come from two tasks; one frame at a time."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws
        self._lock = asyncio.Lock()

    async def send(self, frame: bytes) -> None:
        async with self._lock:  # frame: UTF-8 JSON, sent as a text frame without a copy
            await self._ws.send_frame(frame, WSMsgType.TEXT)


async def _pump(sender: _Sender, subscription: Subscription) -> None:
    while True:
        await sender.send(driver_frame(await subscription.get()))


async def _resend_offer(sender: _Sender, deps: Deps, driver_id: str) -> None:
    try:
        pending = await drivers.pending_offer(deps, driver_id)
    except Exception as exc:
        log.warning("could not look up a pending offer for %s: %s", driver_id, exc)
        return
    if pending is not None:
        await sender.send(offer_frame(pending))


async def _close_when(ws: web.WebSocketResponse, expires: float, replaced: asyncio.Event) -> None:
    """Close at the token's expiry, or once a newer socket of this driver replaced it."""
    try:
        await asyncio.wait_for(replaced.wait(), max(0.0, expires - time.time()))
    except TimeoutError:
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"token expired")
    else:
        await ws.close(code=REPLACED, message=b"replaced by a newer connection")


async def driver_stream(request: web.Request) -> web.StreamResponse:
    actor, expires = stream_principal(request)
    driver_id = schemas.driver_id(request.match_info["driver_id"])
    drivers.authorize_driver(actor, driver_id)
    await _check_backend(request)
    app = request.app
    settings, deps = app[appkeys.SETTINGS], app[appkeys.RUNTIME].deps
    streams, gauge = app[appkeys.STREAMS], app[appkeys.METRICS].websockets
    ws = web.WebSocketResponse(max_msg_size=settings.max_ws_message_bytes, heartbeat=HEARTBEAT_S)
    # Counted before the upgrade: the oldest of this driver's sockets here is closed,
    # never the new one refused (see Streams.held).
    with streams.held(f"driver:{driver_id}") as replaced:
        async with deps.notifier.subscribe(driver_topic(driver_id)) as subscription:
            await ws.prepare(request)
            streams.websockets.add(ws)
            gauge.inc()
            sender = _Sender(ws)
            pump = asyncio.create_task(_pump(sender, subscription))
            # Area crossings and airport queue places, as this instance hears of them.
            areas = asyncio.create_task(driver_area_frames(request, driver_id, sender.send))
            # The token was checked once, at the upgrade: the socket ends when it expires.
            closer = asyncio.create_task(_close_when(ws, expires, replaced))
            try:
                await _resend_offer(sender, deps, driver_id)
                # Cancelled with this handler (a task awaited is cancelled with its waiter).
                await asyncio.create_task(_Socket(request, deps, actor).serve(ws, sender))
            except ConnectionError:
                pass  # the driver's connection dropped mid-send
            finally:
                for task in (pump, closer, areas):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                streams.websockets.discard(ws)
                gauge.inc(-1)
    return ws
