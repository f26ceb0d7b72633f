"""Driver and map endpoints: translate HTTP to the driver use cases and back."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dispatch.domain.principals import Principal
from dispatch.entrypoints import appkeys, schemas
from dispatch.entrypoints.auth import principal
from dispatch.entrypoints.errors import RateLimited
from dispatch.entrypoints.jsonio import BodyTooLarge, json_response, read_json_object
from dispatch.service_layer import drivers
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.errors import InvalidRequest
from dispatch.service_layer.views import driver_view
from geoindex import MAX_K, InvalidInput, Position, UpsertResult

NEARBY_MAX_RADIUS_M = 10_000.0
NEARBY_MAX_K = min(MAX_K, 50)


def deps(request: web.Request) -> Deps:
    return request.app[appkeys.RUNTIME].deps


def check_rate(request: web.Request, driver_id: str) -> None:
    if not request.app[appkeys.LIMITER].allow(driver_id):
        request.app[appkeys.METRICS].rate_limited.inc(limit="driver_updates")
        raise RateLimited("too many location updates for this driver; slow down")


def _path_driver(request: web.Request) -> tuple[Principal, str]:
    actor = principal(request)
    driver_id = schemas.driver_id(request.match_info["driver_id"])
    drivers.authorize_driver(actor, driver_id)  # 403 before reading the body
    return actor, driver_id


async def post_location(request: web.Request) -> web.Response:
    actor, driver_id = _path_driver(request)
    body, _ = await read_json_object(request, request.app[appkeys.SETTINGS].max_body_bytes)
    fix = schemas.fix(body)
    check_rate(request, driver_id)
    result = await drivers.update_location(deps(request), actor, driver_id, fix)
    if result is UpsertResult.STALE:
        return json_response(
            {"error": "stale", "message": "an equal or newer fix is stored", "seq": fix.seq}, 409
        )
    return json_response({"status": "accepted", "seq": fix.seq}, 202)


def _batch_item(item: Any, now_ms: int) -> Position | dict[str, Any]:
    """A valid Position, or the result entry that says why the item is invalid."""
    driver = item.get("driver_id") if isinstance(item, dict) else None
    shown = driver if isinstance(driver, str) and len(driver) <= 64 else None
    try:
        if not isinstance(item, dict):
            raise schemas.InvalidBody("each update must be an object")
        fix = schemas.fix(item, extra={"driver_id"})
        drivers.check_not_future_ms(now_ms, fix.ts_ms)
        return Position(schemas.driver_id(driver), fix.lat, fix.lng, fix.ts_ms, fix.seq)
    except (schemas.InvalidBody, InvalidInput, InvalidRequest, ValueError) as exc:
        return {"driver_id": shown, "status": "invalid", "error": str(exc)}


async def post_locations(request: web.Request) -> web.Response:
    actor = principal(request)
    settings = request.app[appkeys.SETTINGS]
    drivers.authorize_fleet(actor)  # 403 before reading the body
    body, _ = await read_json_object(request, settings.max_batch_body_bytes)
    schemas.only(body, {"updates"})
    updates = body["updates"]
    if not isinstance(updates, list):
        raise schemas.InvalidBody("updates must be a list")
    if len(updates) > settings.max_batch_items:
        raise BodyTooLarge(f"at most {settings.max_batch_items} updates per batch")
    now = deps(request).clock.now_ms()
    items = [_batch_item(u, now) for u in updates]
    valid = [i for i in items if isinstance(i, Position)]
    results = iter(await drivers.update_locations(deps(request), actor, valid))
    out = [
        {"driver_id": i.driver_id, "status": next(results).value} if isinstance(i, Position) else i
        for i in items
    ]
    return json_response({"results": out})


async def put_status(request: web.Request) -> web.Response:
    actor, driver_id = _path_driver(request)
    body, _ = await read_json_object(request, request.app[appkeys.SETTINGS].max_body_bytes)
    status = schemas.status(body)
    rec, state = await drivers.set_status(deps(request), actor, driver_id, status)
    return json_response(driver_view(rec, state))


async def get_driver(request: web.Request) -> web.Response:
    actor, driver_id = _path_driver(request)
    rec, state = await drivers.get_driver(deps(request), actor, driver_id)
    return json_response(driver_view(rec, state))


async def get_nearby(request: web.Request) -> web.Response:
    caller = principal(request)  # any valid token
    q = request.query
    schemas.only(q, {"lat", "lng"}, {"k", "radius_m"})
    lat = schemas.query_number(q, "lat", None, -90, 90)
    lng = schemas.query_number(q, "lng", None, -180, 180)
    k = schemas.query_number(q, "k", 10, 1, NEARBY_MAX_K)
    if not float(k).is_integer():
        raise schemas.InvalidBody("query parameter k must be an integer")
    radius = schemas.query_number(q, "radius_m", 2_000, 0, NEARBY_MAX_RADIUS_M)
    # Counted once valid: only a query that reaches the index costs anything.
    if not request.app[appkeys.NEARBY_LIMITER].allow(caller.subject):
        request.app[appkeys.METRICS].rate_limited.inc(limit="nearby")
        raise RateLimited("too many map queries; slow down")
    found = await deps(request).index.nearest(lat, lng, int(k), radius)
    cars = [{"lat": n.lat, "lng": n.lng, "distance_m": round(n.distance_m, 1)} for n in found]
    return json_response({"cars": cars})
