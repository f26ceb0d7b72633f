"""Every failure becomes a JSON error body with a 4xx/5xx status; never a stack trace."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from dispatch.adapters.durable import DurabilityTimeout
from dispatch.adapters.jwt_tokens import InvalidToken
from dispatch.domain.areas import InvalidArea, OutsideServiceArea, PickupNotAllowed
from dispatch.domain.errors import (
    DomainError,
    DriverBusy,
    InvalidTransition,
    NotParticipant,
)
from dispatch.domain.quotes import QuoteMismatch
from dispatch.entrypoints import appkeys
from dispatch.entrypoints.jsonio import BodyTooLarge, MalformedJson, error_response, json_response
from dispatch.entrypoints.schemas import InvalidBody
from dispatch.service_layer import errors as svc
from dispatch.service_layer.rider_limits import RiderRateLimited
from geoindex import InvalidInput

log = logging.getLogger(__name__)

_DOMAIN_STATUS: list[tuple[type[DomainError], int]] = [
    (NotParticipant, 403),
    (svc.Forbidden, 403),
    (svc.NotFound, 404),
    (DriverBusy, 409),
    (InvalidTransition, 409),
    (svc.IdempotencyInProgress, 409),
    (svc.Contended, 409),
    (svc.ActiveRideLimit, 409),
    (svc.IdempotencyMismatch, 422),
    (QuoteMismatch, 422),  # QuoteExpired: 409, as any other domain error
    (svc.InvalidRequest, 422),
    (InvalidArea, 422),
    (OutsideServiceArea, 422),
    (PickupNotAllowed, 422),
]


class Unauthorized(Exception):
    pass


class RateLimited(Exception):
    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s  # whole seconds until the bucket has a token


@dataclass(frozen=True, slots=True)
class ApiError:
    """A known failure as the client sees it, over HTTP or as a WebSocket error frame."""

    status: int
    code: str
    message: str
    field: str | None = None  # JSON pointer to the offending field, when there is one
    headers: tuple[tuple[str, str], ...] = ()


def to_error(exc: BaseException) -> ApiError | None:
    """The API error for a known failure, or None for a bug."""
    if isinstance(exc, DomainError):
        status = next((s for kind, s in _DOMAIN_STATUS if isinstance(exc, kind)), 409)
        return ApiError(status, exc.code, str(exc))
    if isinstance(exc, (Unauthorized, InvalidToken)):
        message = str(exc) or "a valid bearer token is required"
        return ApiError(401, "unauthorized", message, None, _BEARER)
    if isinstance(exc, InvalidBody):
        return ApiError(422, exc.code, str(exc), exc.field)
    if isinstance(exc, InvalidInput):
        return ApiError(422, "invalid_input", str(exc))
    if isinstance(exc, MalformedJson):
        return ApiError(400, "invalid_json", str(exc))
    if isinstance(exc, BodyTooLarge):
        return ApiError(413, "body_too_large", str(exc))
    if isinstance(exc, (RateLimited, RiderRateLimited)):
        return ApiError(
            429, "rate_limited", str(exc), None, (("Retry-After", str(exc.retry_after_s)),)
        )
    if isinstance(exc, DurabilityTimeout):  # DISPATCH_DURABLE_WRITES; before its base class
        message = "the write was not acknowledged by a replica in time; retry with the same request"
        return ApiError(503, DurabilityTimeout.code, message)
    if isinstance(exc, svc.BackendUnavailable):
        return ApiError(503, "backend_unavailable", "the data store is unavailable; retry")
    return None


_BEARER = (("WWW-Authenticate", 'Bearer realm="dispatch"'),)


def to_response(exc: BaseException) -> web.Response | None:
    """The JSON error response for a known failure, or None for a bug."""
    if isinstance(exc, PickupNotAllowed):  # the body also says where a pickup may be
        near = None if exc.nearest is None else {"lat": exc.nearest.lat, "lng": exc.nearest.lng}
        body = {"error": exc.code, "message": str(exc), "area_id": exc.area_id}
        return json_response({**body, "nearest_allowed": near}, 422)
    error = to_error(exc)
    if error is None:
        return None
    resp = error_response(error.status, error.code, error.message, error.field)
    resp.headers.update(error.headers)
    return resp


def http_error(exc: web.HTTPException) -> web.Response:
    """aiohttp's own 4xx/5xx (no route, a method not allowed, a body past the app's
    limit) in the JSON error shape."""
    code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
        exc.status, "http_error"
    )
    resp = error_response(exc.status, code, exc.reason)
    if "Allow" in exc.headers:  # a 405 must say what is allowed (RFC 9110)
        resp.headers["Allow"] = exc.headers["Allow"]
    return resp


def failure(request: web.Request, exc: Exception) -> web.Response:
    """A handler's failure as its JSON error (counted and logged where it should be);
    a bug as a 500 that says nothing more, logged with its traceback."""
    known = to_response(exc)
    if known is None:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error")
    if isinstance(exc, RiderRateLimited):  # counted in the backend, across instances
        request.app[appkeys.METRICS].refused(f"rider_{exc.action}")
    if known.status == 503:
        request.app[appkeys.METRICS].backend_error()
        log.warning("backend unavailable on %s %s: %s", request.method, request.path, exc)
    return known
