"""Documented limits of the geoindex API, and the checks that enforce them before any I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from geoindex.errors import InvalidCoordinates, InvalidDriverId, InvalidQuery, InvalidTimestamp
from geoindex.model import Position

MAX_K = 100
MAX_RADIUS_M = 50_000.0
MAX_BATCH = 5_000
MAX_ID_LEN = 64
# Scores and sequence numbers pass through Lua, whose numbers are doubles.
MAX_INT = 2**53 - 1
# The driver-id rule of the library. Ids become parts of Redis keys: no braces (hash
# tags), no spaces, no control characters. dispatch.domain.principals applies the same
# alphabet and length to every principal id (the domain imports nothing but the standard
# library); tests/unit/test_geoindex_api.py holds the two to one rule.
DRIVER_ID_PATTERN = re.compile(rf"[A-Za-z0-9_.:\-]{{1,{MAX_ID_LEN}}}")
# Product names become parts of Redis keys and of comma-joined lists in Lua: lowercase
# letters, digits, _ and -, starting with a letter or digit ('-' alone means "none").
PRODUCT_PATTERN = re.compile(r"[a-z0-9][a-z0-9_\-]{0,31}")
MAX_PRODUCTS = 16  # products one driver may serve (one sorted-set write each)


def check_driver_id(driver_id: object) -> str:
    if not isinstance(driver_id, str) or not driver_id:
        raise InvalidDriverId("driver id must be a non-empty string")
    if len(driver_id) > MAX_ID_LEN:
        raise InvalidDriverId(f"driver id longer than {MAX_ID_LEN} characters")
    if not DRIVER_ID_PATTERN.fullmatch(driver_id):
        raise InvalidDriverId("driver id may hold only letters, digits and _ . : -")
    return driver_id


def check_product(product: object) -> str:
    if not isinstance(product, str) or not PRODUCT_PATTERN.fullmatch(product):
        raise InvalidQuery("a product is 1 to 32 of a-z, 0-9, _ and -, first a-z or 0-9")
    return product


def check_products(products: object) -> tuple[str, ...]:
    """A driver's products, checked, without duplicates, in one order (sorted)."""
    if isinstance(products, str) or not isinstance(products, (Sequence, set, frozenset)):
        raise InvalidQuery("products must be a sequence of product names")
    if len(products) > MAX_PRODUCTS:
        raise InvalidQuery(f"at most {MAX_PRODUCTS} products per driver")
    return tuple(sorted({check_product(p) for p in products}))


def check_latlng(lat: object, lng: object) -> tuple[float, float]:
    # bool is an int subclass; True is not a latitude.
    for name, value in (("lat", lat), ("lng", lng)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidCoordinates(f"{name} must be a number")
        if not math.isfinite(value):
            raise InvalidCoordinates(f"{name} must be finite")
    lat_f, lng_f = float(lat), float(lng)  # type: ignore[arg-type]
    if not -90.0 <= lat_f <= 90.0:
        raise InvalidCoordinates(f"lat {lat_f} outside [-90, 90]")
    if not -180.0 <= lng_f <= 180.0:
        raise InvalidCoordinates(f"lng {lng_f} outside [-180, 180]")
    return lat_f, lng_f


def _check_int(name: str, value: object, error: type[Exception]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise error(f"{name} must be an integer in [0, 2**53)")
    return value


def check_ts(ts_ms: object) -> int:
    return _check_int("ts_ms", ts_ms, InvalidTimestamp)


def check_position(p: Position) -> Position:
    check_driver_id(p.driver_id)
    lat, lng = check_latlng(p.lat, p.lng)
    check_ts(p.ts_ms)
    if p.seq is not None:
        _check_int("seq", p.seq, InvalidTimestamp)
    return Position(p.driver_id, lat, lng, p.ts_ms, p.seq)


def check_batch(positions: Sequence[Position]) -> list[Position]:
    if len(positions) > MAX_BATCH:
        raise InvalidQuery(f"batch of {len(positions)} above the limit of {MAX_BATCH}")
    return [check_position(p) for p in positions]


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidQuery(f"k must be an integer in [1, {MAX_K}]")
    return k


def check_radius(radius_m: object) -> float:
    if isinstance(radius_m, bool) or not isinstance(radius_m, (int, float)):
        raise InvalidQuery("radius_m must be a number")
    r = float(radius_m)
    if not math.isfinite(r) or not 0.0 <= r <= MAX_RADIUS_M:
        raise InvalidQuery(f"radius_m must be in [0, {MAX_RADIUS_M:g}]")
    return r


def check_searches(
    points: Sequence[tuple[float, float]], k: object, radius_m: object, product: object
) -> list[tuple[float, float]]:
    """A nearest_many call's arguments: every point is refused before any is searched."""
    check_k(k)
    check_radius(radius_m)
    if product is not None:
        check_product(product)
    return [check_latlng(lat, lng) for lat, lng in points]
