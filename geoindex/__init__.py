"""Exact k-nearest H3 driver index: embedded, Redis and Redis Cluster backends."""

from geoindex.errors import (
    BackendUnavailable,
    GeoIndexError,
    InvalidCoordinates,
    InvalidDriverId,
    InvalidInput,
    InvalidQuery,
    InvalidTimestamp,
)
from geoindex.limits import MAX_BATCH, MAX_K, MAX_RADIUS_M
from geoindex.model import DriverState, Neighbor, Position, UpsertResult
from geoindex.port import GeoIndex

__all__ = [
    "MAX_BATCH",
    "MAX_K",
    "MAX_RADIUS_M",
    "BackendUnavailable",
    "DriverState",
    "GeoIndex",
    "GeoIndexError",
    "InvalidCoordinates",
    "InvalidDriverId",
    "InvalidInput",
    "InvalidQuery",
    "InvalidTimestamp",
    "Neighbor",
    "Position",
    "UpsertResult",
]
