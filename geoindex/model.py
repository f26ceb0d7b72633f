"""Value types of the geoindex API."""

from __future__ import annotations

import enum
from dataclasses import dataclass


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
