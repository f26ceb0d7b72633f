"""Ride endpoints: request (with Idempotency-Key), the driver's and rider's steps, reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import Ride
from dispatch.entrypoints import appkeys, prefer, schemas
from dispatch.entrypoints.auth import principal
from dispatch.entrypoints.jsonio import json_response, raw_json_response, read_body
from dispatch.entrypoints.views_products import product_of
from dispatch.entrypoints.wire import encode, ride_view
from dispatch.service_layer import ride_requests, ride_steps, ride_wait
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.errors import Forbidden

Step = Callable[[Deps, Principal, str], Awaitable[Ride]]


def _deps(request: web.Request) -> Deps:
    return request.app[appkeys.RUNTIME].deps


def _render(ride: Ride) -> bytes:
    return encode(ride_view(ride))


async def post_ride(request: web.Request) -> web.Response:
    app = request.app  # a lookup of its own each time
    actor = principal(request, app)
    if actor.role is not Role.RIDER:
        raise Forbidden("only a rider token may request a ride")
    key = schemas.idempotency_key(request.headers.get("Idempotency-Key"))
    settings = app[appkeys.SETTINGS]
    raw = await read_body(request, settings.max_body_bytes)
    body = schemas.parse(schemas.RIDE_REQUEST, raw)  # read once: points, quote, product
    pickup, dropoff = schemas.ride_points(body)
    deps = app[appkeys.RUNTIME].deps
    product = product_of(deps.products, body.product)
    # A duplicate waits for the first request at most 0.8 of its own deadline, so it
    # answers 409 request_in_progress rather than the deadline's 503.
    answer = await ride_requests.request_ride_once(
        deps,
        actor,
        pickup,
        dropoff,
        key,
        _render,
        settings.request_timeout_s * 0.8,
        body.quote_id,
        product,
    )
    # Batched mode: `Prefer: wait=N` holds a searching ride's answer until its window
    # matched it (within N s, capped; and within the request's own deadline).
    cap = min(settings.prefer_wait_max_s, settings.request_timeout_s * 0.8)
    wait = prefer.wait_s(request.headers.get("Prefer"), cap)
    if wait > 0 and b'"status":"searching"' in answer:
        ride_id = orjson.loads(answer)["id"]
        ride = await ride_wait.until_matched(deps, ride_id, wait)
        if ride is not None:
            answer = _render(ride)
    return raw_json_response(answer, 201)


def _step(step: Step) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def view(request: web.Request) -> web.Response:
        actor = principal(request)
        ride_id = schemas.ride_id(request.match_info["ride_id"])
        if request.can_read_body:
            raw = await read_body(request, request.app[appkeys.SETTINGS].max_body_bytes)
            schemas.parse(schemas.NO_FIELDS, raw)
        ride = await step(_deps(request), actor, ride_id)
        other = actor.role is Role.DRIVER and ride.driver_id != actor.id
        return json_response(ride_view(ride, for_other_driver=other))

    return view


accept = _step(ride_steps.accept)
decline = _step(ride_steps.decline)
arrived = _step(ride_steps.arrive)
start = _step(ride_steps.start)
complete = _step(ride_steps.complete)
cancel = _step(ride_steps.cancel)


async def get_ride(request: web.Request) -> web.Response:
    actor = principal(request)
    ride_id = schemas.ride_id(request.match_info["ride_id"])
    ride = await ride_steps.get_ride(_deps(request), actor, ride_id)
    return json_response(ride_view(ride))
