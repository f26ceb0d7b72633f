"""Validation of request bodies, frames and query strings: exact field sets (an unknown
field is an error, so nobody can slip in `status` or `driver_id`), types, ranges."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from dispatch.domain.drivers import DriverStatus
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import valid_id
from dispatch.service_layer.drivers import Fix
from dispatch.service_layer.errors import NotFound

MAX_INT = 2**53 - 1
_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")
_RIDE_ID = re.compile(r"r_[0-9a-f]{32}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces

FIX_FIELDS = {"lat", "lng", "ts", "seq"}
FIX_OPTIONAL = {"heading", "speed", "accuracy"}


class InvalidBody(ValueError):
    def __init__(self, message: str, code: str = "invalid_body") -> None:
        super().__init__(message)
        self.code = code


def only(
    data: Mapping[str, Any], required: AbstractSet[str], optional: AbstractSet[str] = frozenset()
) -> None:
    unknown = sorted(set(data) - required - optional)
    if unknown:
        raise InvalidBody(f"unknown field(s): {', '.join(unknown)}", "unknown_field")
    missing = sorted(required - set(data))
    if missing:
        raise InvalidBody(f"missing field(s): {', '.join(missing)}")


def number(data: Mapping[str, Any], key: str, lo: float, hi: float) -> float:
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InvalidBody(f"{key} must be a finite number")
    if not lo <= v <= hi:
        raise InvalidBody(f"{key} must be within [{lo:g}, {hi:g}]")
    return float(v)


def integer(data: Mapping[str, Any], key: str, lo: int = 0, hi: int = MAX_INT) -> int:
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise InvalidBody(f"{key} must be an integer within [{lo}, {hi}]")
    return v


def latlng(data: Any, where: str) -> LatLng:
    if not isinstance(data, dict):
        raise InvalidBody(f"{where} must be an object with lat and lng")
    only(data, {"lat", "lng"})
    return LatLng(number(data, "lat", -90, 90), number(data, "lng", -180, 180))


def fix(data: Mapping[str, Any], extra: AbstractSet[str] = frozenset()) -> Fix:
    """A position fix. heading, speed and accuracy are checked, then not stored."""
    only(data, FIX_FIELDS | extra, FIX_OPTIONAL)
    point = latlng({"lat": data["lat"], "lng": data["lng"]}, "position")
    if "heading" in data:
        number(data, "heading", 0, 360)
    if "speed" in data:
        number(data, "speed", 0, 150)
    if "accuracy" in data:
        number(data, "accuracy", 0, 100_000)
    return Fix(point.lat, point.lng, integer(data, "ts"), integer(data, "seq"))


def driver_id(value: Any) -> str:
    if not isinstance(value, str) or not valid_id(value):
        raise InvalidBody("driver id must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    return value


def ride_id(value: str) -> str:
    if not _RIDE_ID.fullmatch(value):
        raise NotFound(f"no ride {value[:80]}")
    return value


def status(data: Mapping[str, Any]) -> DriverStatus:
    only(data, {"status"})
    if data["status"] not in ("available", "offline"):
        raise InvalidBody("status must be available or offline")
    return DriverStatus(data["status"])


def ride_request(data: Mapping[str, Any]) -> tuple[LatLng, LatLng | None]:
    only(data, {"pickup"}, {"dropoff"})
    dropoff = data.get("dropoff")
    return latlng(data["pickup"], "pickup"), None if dropoff is None else latlng(dropoff, "dropoff")


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise InvalidBody("Idempotency-Key must be 1-128 printable ASCII characters")
    return value


def query_number(
    query: Mapping[str, str], key: str, default: float | None, lo: float, hi: float
) -> float:
    raw = query.get(key)
    if raw is None:
        if default is None:
            raise InvalidBody(f"query parameter {key} is required")
        return default
    # float() would take "nan", "inf" and "1_0"; only plain decimal numbers pass here.
    if not _NUMBER.fullmatch(raw) or not math.isfinite(value := float(raw)):
        raise InvalidBody(f"query parameter {key} must be a finite number")
    if not lo <= value <= hi:
        raise InvalidBody(f"query parameter {key} must be within [{lo:g}, {hi:g}]")
    return value
