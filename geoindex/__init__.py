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
from geoindex.memory import MemoryGeoIndex
from geoindex.model import DriverState, Neighbor, Position, UpsertResult
from geoindex.port import GeoIndex
from geoindex.redis_index import RedisGeoIndex
from geoindex.search import SearchConfig

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
    "MemoryGeoIndex",
    "Neighbor",
    "Position",
    "RedisGeoIndex",
    "SearchConfig",
    "UpsertResult",
]
