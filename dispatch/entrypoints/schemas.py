"""Validation: raw bodies, query strings, path parts and frames into the contract's Structs
(contract.py), or errors with the documented codes and a JSON pointer to the field."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

from dispatch.domain.drivers import DriverStatus
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import valid_id
from dispatch.entrypoints import contract
from dispatch.entrypoints.jsonio import MalformedJson
from dispatch.service_layer.drivers import Fix
from dispatch.service_layer.errors import NotFound

T = TypeVar("T")

_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")
_INTEGER = re.compile(r"-?(0|[1-9]\d*)")
_RIDE_ID = re.compile(r"r_[0-9a-f]{32}([0-9a-f]{5})?")  # minted before, or in the rider's slot
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")
# msgspec's messages: "<what> - at `$.pickup.lat`" (no suffix at the root).
_AT = re.compile(r" - at `(\$[^`]*)`$")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_NAMED = re.compile(r"Object (?:contains unknown|missing required) field `(.*)`$", re.S)

LOCATION = msgspec.json.Decoder(contract.Location)
STATUS_CHANGE = msgspec.json.Decoder(contract.StatusChange)
RIDE_REQUEST = msgspec.json.Decoder(contract.RideRequest)
NO_FIELDS = msgspec.json.Decoder(contract.NoFields)
CLIENT_FRAME = msgspec.json.Decoder(contract.AnyClientFrame)


class _Batch(contract.Shape):
    updates: list[contract.BatchItem]


_BATCH = msgspec.json.Decoder(_Batch)  # every item valid: the common case, one pass
_RAW_BATCH = msgspec.json.Decoder(contract.LocationBatch)  # else item by item
_ITEM = msgspec.json.Decoder(contract.BatchItem)


class _Named(msgspec.Struct):
    """Just an invalid batch item's driver_id, to name it in its result."""

    driver_id: Any = None


_NAMED_ITEM = msgspec.json.Decoder(_Named)


class _Framed(msgspec.Struct):
    """Just a frame's id, to echo it in the error that answers an invalid frame."""

    id: Any = None


_FRAMED = msgspec.json.Decoder(_Framed)


class InvalidBody(ValueError):
    def __init__(self, message: str, code: str = "invalid_body", field: str | None = None):
        super().__init__(message)
        self.code = code
        self.field = field  # a JSON pointer (RFC 6901) to the field at fault


def pointer(path: str, name: str | None = None) -> str:
    """msgspec's `$.updates[3].lat` as the JSON pointer `/updates/3/lat`."""
    steps = [m.group(1) or m.group(2) for m in _STEP.finditer(path[1:])]
    if name is not None:
        steps.append(name)
    return "".join("/" + s.replace("~", "~0").replace("/", "~1") for s in steps)


def invalid(exc: msgspec.ValidationError) -> InvalidBody | MalformedJson:
    """A msgspec validation error as the documented error, naming the field at fault."""
    text = str(exc)
    at = _AT.search(text)
    what, path = (text[: at.start()], at.group(1)) if at else (text, "$")
    named = _NAMED.match(what)
    field = pointer(path, named.group(1) if named else None)
    if what == "Number out of range":  # 1e999: not a double, so not JSON we can read
        return MalformedJson(f"body is not valid JSON: number out of range at {field}")
    code = "unknown_field" if what.startswith("Object contains unknown") else "invalid_body"
    return InvalidBody(f"{what} at {field}" if field else what, code, field or None)


def parse(decoder: msgspec.json.Decoder[T], raw: bytes) -> T:
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise invalid(exc) from None
    except msgspec.DecodeError as exc:
        raise MalformedJson(f"body is not valid JSON: {exc}") from None


def client_frame(raw: bytes) -> contract.AnyClientFrame:
    """A driver WebSocket frame. Not an object, or no known `type`: `invalid_frame`."""
    try:
        return parse(CLIENT_FRAME, raw)
    except InvalidBody as exc:
        if exc.field in (None, "/type"):
            raise InvalidBody(str(exc), "invalid_frame", exc.field) from None
        raise


def fix_of(location: contract.Location) -> Fix:
    return Fix(location.lat, location.lng, location.ts, location.seq)


def ride_points(body: contract.RideRequest) -> tuple[LatLng, LatLng | None]:
    """A parsed POST /v1/rides body's pickup, and dropoff if given."""
    dropoff = None if body.dropoff is None else LatLng(body.dropoff.lat, body.dropoff.lng)
    return LatLng(body.pickup.lat, body.pickup.lng), dropoff


def batch(raw: bytes) -> list[contract.BatchItem | contract.BatchResult]:
    """The fleet batch, item by item: a valid item, or the `invalid` result naming why.
    A body that is not a batch at all raises as any other body would."""
    try:
        return list(_BATCH.decode(raw).updates)
    except msgspec.ValidationError as exc:
        error = invalid(exc)
        if isinstance(error, MalformedJson) or not (error.field or "").startswith("/updates/"):
            raise error from None  # the batch itself is wrong, not one of its items
    except msgspec.DecodeError as exc:
        raise MalformedJson(f"body is not valid JSON: {exc}") from None
    return [_item(item) for item in parse(_RAW_BATCH, raw).updates]


def _item(raw: msgspec.Raw) -> contract.BatchItem | contract.BatchResult:
    try:
        return _ITEM.decode(raw)
    except msgspec.ValidationError as exc:
        error = invalid(exc)
        if isinstance(error, MalformedJson):
            raise error from None  # as for any body: a number beyond a double is a 400
        try:
            named = _NAMED_ITEM.decode(raw).driver_id
        except msgspec.ValidationError:
            named = None  # not even an object
        shown = named if isinstance(named, str) and len(named) <= 64 else None
        return contract.BatchResult(driver_id=shown, status="invalid", error=str(error))


def query(params: Mapping[str, str], kind: type[T]) -> T:
    """A query string into its Struct. Numbers must be plain decimals: float() would also
    take "nan", "inf", "0x10" and "1_0"."""
    values: dict[str, Any] = {}
    for key in params:
        raw = params[key]
        if _INTEGER.fullmatch(raw):
            values[key] = int(raw)
        elif _NUMBER.fullmatch(raw) and math.isfinite(number := float(raw)):
            values[key] = number
        else:
            values[key] = raw  # refused by the Struct's number type, naming the parameter
    try:
        return msgspec.convert(values, kind)
    except msgspec.ValidationError as exc:
        error = invalid(exc)
        if isinstance(error, MalformedJson):  # a number beyond a double: still a 422 here
            raise InvalidBody(str(error)) from None
        raise error from None


def driver_id(value: Any) -> str:
    if not isinstance(value, str) or not valid_id(value):
        raise InvalidBody("driver id must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    return value


def ride_id(value: str) -> str:
    if not _RIDE_ID.fullmatch(value):
        raise NotFound(f"no ride {value[:80]}")
    return value


def status(change: contract.StatusChange) -> DriverStatus:
    return DriverStatus(change.status)


def frame_id(raw: bytes | str) -> str | msgspec.UnsetType:
    """The id a client gave a frame that did not validate, if it is a usable one."""
    try:
        given = _FRAMED.decode(raw).id
    except msgspec.DecodeError:  # not JSON, or not an object
        return msgspec.UNSET
    return given if isinstance(given, str) and len(given) <= 64 else msgspec.UNSET


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise InvalidBody("Idempotency-Key must be 1-128 printable ASCII characters")
    return value
