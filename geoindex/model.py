"""Value types of the geoindex API."""

from __future__ import annotations

import enum
import inspect
from dataclasses import dataclass

from geoindex._resp import position_init_for


class UpsertResult(enum.Enum):
    ACCEPTED = "accepted"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Position:
    """One GPS fix of one driver: ts_ms is the fix time; seq, if given, increases per driver."""

    driver_id: str
    lat: float
    lng: float
    ts_ms: int
    seq: int | None = None


# The dataclass's __init__ sets each field through object.__setattr__ (it is frozen): a
# Python frame and five calls for every fix, about 8 thousand instructions. The same
# assignments in C, with the same signature (geoindex/_resp.c; tests/unit/test_resp.py).
Position.__signature__ = inspect.signature(Position)  # type: ignore[attr-defined]
Position.__init__ = position_init_for(Position)  # type: ignore[method-assign]


@dataclass(frozen=True, slots=True)
class Neighbor:
    """A search hit. lat/lng are the stored (quantised, <= 0.6 m off) position."""

    driver_id: str
    distance_m: float
    lat: float
    lng: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class DriverState:
    driver_id: str
    lat: float
    lng: float
    ts_ms: int
    seq: int | None
    available: bool
    products: tuple[str, ...] = ()  # what the driver serves (sorted)
