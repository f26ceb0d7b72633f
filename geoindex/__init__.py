"""Exact k-nearest H3 driver index: embedded, Redis and Redis Cluster backends."""

from geoindex.coalesce import CoalescingGeoIndex
from geoindex.columns import Columns
from geoindex.errors import (
    BackendUnavailable,
    GeoIndexError,
    InvalidConfig,
    InvalidCoordinates,
    InvalidDriverId,
    InvalidInput,
    InvalidQuery,
    InvalidTimestamp,
)
from geoindex.limits import DRIVER_ID_PATTERN, MAX_BATCH, MAX_ID_LEN, MAX_K, MAX_RADIUS_M
from geoindex.memory import MemoryGeoIndex
from geoindex.model import DriverState, Neighbor, Position, UpsertResult
from geoindex.port import GeoIndex
from geoindex.redis_edge import Script, ScriptRunner, translated
from geoindex.redis_index import RedisGeoIndex
from geoindex.search import SearchConfig
from geoindex.within import MAX_WITHIN

__all__ = [
    "DRIVER_ID_PATTERN",
    "MAX_BATCH",
    "MAX_ID_LEN",
    "MAX_K",
    "MAX_RADIUS_M",
    "MAX_WITHIN",
    "BackendUnavailable",
    "CoalescingGeoIndex",
    "Columns",
    "DriverState",
    "GeoIndex",
    "GeoIndexError",
    "InvalidConfig",
    "InvalidCoordinates",
    "InvalidDriverId",
    "InvalidInput",
    "InvalidQuery",
    "InvalidTimestamp",
    "MemoryGeoIndex",
    "Neighbor",
    "Position",
    "RedisGeoIndex",
    "Script",
    "ScriptRunner",
    "SearchConfig",
    "UpsertResult",
    "translated",
]
