"""Ride endpoints: request (with Idempotency-Key), the driver's and rider's steps, reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import Ride
from dispatch.entrypoints import appkeys, schemas
from dispatch.entrypoints.auth import principal
from dispatch.entrypoints.jsonio import json_response, raw_json_response, read_body
from dispatch.service_layer import idempotency, ride_steps
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.errors import Forbidden
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from dispatch.service_layer.views import ride_view

Step = Callable[[Deps, Principal, str], Awaitable[Ride]]


def _deps(request: web.Request) -> Deps:
    return request.app[appkeys.RUNTIME].deps


async def post_ride(request: web.Request) -> web.Response:
    actor = principal(request)
    if actor.role is not Role.RIDER:
        raise Forbidden("only a rider token may request a ride")
    key = schemas.idempotency_key(request.headers.get("Idempotency-Key"))
    raw = await read_body(request, request.app[appkeys.SETTINGS].max_body_bytes)
    pickup, dropoff = schemas.ride_request(raw)
    deps = _deps(request)
    ride_id = new_ride_id(actor.id, key)

    async def produce() -> bytes:
        ride = await request_ride(deps, actor, ride_id, pickup, dropoff)
        return orjson.dumps(ride_view(ride))

    if key is None:
        return raw_json_response(await produce(), 201)
    # Same key + same body -> the stored answer, byte for byte; another body -> 422.
    canonical = orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS)
    fingerprint = idempotency.fingerprint(b"POST /v1/rides", canonical)
    # A duplicate waits for the first request at most 0.8 of its own deadline, so it
    # answers 409 request_in_progress rather than the deadline's 503.
    deadline_s = request.app[appkeys.SETTINGS].request_timeout_s

    async def ride_still_stored(_answer: bytes) -> bool:
        # The ride's id comes from the key: a retry after its loss stores it again.
        return await deps.rides.get(ride_id) is not None

    payload = await idempotency.once(
        deps.idempotency,
        f"{actor.id}:{key}",
        fingerprint,
        produce,
        wait_s=deadline_s * 0.8,
        still_true=ride_still_stored,
    )
    return raw_json_response(payload, 201)


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
