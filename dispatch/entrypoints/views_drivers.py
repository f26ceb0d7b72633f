"""Driver and map endpoints: translate HTTP to the driver use cases and back."""

from __future__ import annotations

from aiohttp import web

from dispatch.domain.principals import Principal
from dispatch.entrypoints import appkeys, contract, schemas
from dispatch.entrypoints.auth import principal
from dispatch.entrypoints.errors import RateLimited
from dispatch.entrypoints.jsonio import BodyTooLarge, json_response, raw_json_response, read_body
from dispatch.entrypoints.views_products import vehicle_of
from dispatch.entrypoints.wire import driver_view
from dispatch.service_layer import drivers
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.errors import InvalidRequest
from geoindex import Position, UpsertResult


def deps(request: web.Request) -> Deps:
    return request.app[appkeys.RUNTIME].deps


def check_rate(app: web.Application, driver_id: str) -> None:
    limiter = app[appkeys.LOCATION_LIMITER]
    if not limiter.allow(driver_id):
        app[appkeys.METRICS].refused("driver_updates")
        raise RateLimited(
            "too many location updates for this driver; slow down",
            limiter.retry_after_s(driver_id),
        )


def _path_driver(request: web.Request, app: web.Application) -> tuple[Principal, str]:
    actor = principal(request, app)
    driver_id = schemas.driver_id(request.match_info["driver_id"])
    drivers.authorize_driver(actor, driver_id)  # 403 before reading the body
    return actor, driver_id


async def post_location(request: web.Request) -> web.Response:
    app = request.app  # a lookup of its own (the match's current app): once per request
    actor, driver_id = _path_driver(request, app)
    raw = await read_body(request, app[appkeys.SETTINGS].max_body_bytes)
    fix = schemas.fix_of(schemas.parse(schemas.LOCATION, raw))
    check_rate(app, driver_id)
    outcome = await drivers.update_location(app[appkeys.RUNTIME].deps, actor, driver_id, fix)
    if outcome.result is UpsertResult.STALE:
        stored = outcome.stored
        answer = contract.StaleFix(
            error="stale",
            message="an equal or newer fix is stored: its seq and ts are in this answer",
            seq=None if stored is None else stored.seq,
            ts=None if stored is None else stored.ts_ms,
        )
        return json_response(answer, 409)
    return raw_json_response(accepted(fix.seq), 202)


def accepted(seq: int) -> bytes:
    """contract.Accepted's encoding, without making and encoding the Struct for every fix."""
    return b'{"status":"accepted","seq":%d}' % seq


def _position(item: contract.BatchItem, now_ms: int) -> Position | contract.BatchResult:
    """The item's Position, or its `invalid` result when it is stamped too far ahead."""
    try:
        drivers.check_not_future_ms(now_ms, item.ts)
    except InvalidRequest as exc:
        return contract.BatchResult(driver_id=item.driver_id, status="invalid", error=str(exc))
    return Position(item.driver_id, item.lat, item.lng, item.ts, item.seq)


async def post_locations(request: web.Request) -> web.Response:
    actor = principal(request)
    settings = request.app[appkeys.SETTINGS]
    drivers.authorize_fleet(actor)  # 403 before reading the body
    items = schemas.batch(await read_body(request, settings.max_batch_body_bytes))
    if len(items) > settings.max_batch_items:
        raise BodyTooLarge(f"at most {settings.max_batch_items} updates per batch")
    now = deps(request).clock.now_ms()
    checked = [_position(i, now) if isinstance(i, contract.BatchItem) else i for i in items]
    valid = [i for i in checked if isinstance(i, Position)]
    results = iter(await drivers.update_locations(deps(request), actor, valid))
    out = [
        contract.BatchResult(driver_id=i.driver_id, status=next(results).value)
        if isinstance(i, Position)
        else i
        for i in checked
    ]
    return json_response(contract.BatchResults(results=out))


async def put_status(request: web.Request) -> web.Response:
    actor, driver_id = _path_driver(request, request.app)
    raw = await read_body(request, request.app[appkeys.SETTINGS].max_body_bytes)
    change = schemas.parse(schemas.STATUS_CHANGE, raw)
    vehicle = (
        None
        if change.vehicle is None
        else vehicle_of(deps(request).products, change.vehicle, "/vehicle")
    )
    status = schemas.status(change)
    rec, state = await drivers.set_status(deps(request), actor, driver_id, status, vehicle)
    return json_response(driver_view(rec, state))


async def get_driver(request: web.Request) -> web.Response:
    actor, driver_id = _path_driver(request, request.app)
    rec, state = await drivers.get_driver(deps(request), actor, driver_id)
    return json_response(driver_view(rec, state))


async def get_nearby(request: web.Request) -> web.Response:
    caller = principal(request)  # any valid token
    q = schemas.query(request.query, contract.NearbyQuery)
    # Counted once valid: only a query that reaches the index costs anything.
    limiter = request.app[appkeys.NEARBY_LIMITER]
    if not limiter.allow(caller.subject):
        request.app[appkeys.METRICS].refused("nearby")
        raise RateLimited("too many map queries; slow down", limiter.retry_after_s(caller.subject))
    found = await deps(request).index.nearest(q.lat, q.lng, q.k, q.radius_m)
    cars = [contract.Car(lat=n.lat, lng=n.lng, distance_m=round(n.distance_m, 1)) for n in found]
    return json_response(contract.Nearby(cars=cars))
