"""Redis clients for the stores: one for a single Redis or a Redis Cluster, with timeouts
everywhere (a dead Redis must give an error quickly, never a hung request); the stores'
Lua scripts and key names. Scripts run, and errors translate, at geoindex's Redis edge
(geoindex.redis_edge): one runner and one BackendUnavailable for the whole service."""

from __future__ import annotations

import os
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster

from geoindex import Script

AnyRedis = Redis | RedisCluster

MAX_CONNECTIONS = 256  # per instance (and per cluster node); a burst waits for a free one
# A driver record, an active ride or a rider's count of them that nobody touches for a
# week is junk: every write to one of them sets this expiry again.
UNTOUCHED_KEEP_MS = 7 * 24 * 3600 * 1000

_LUA = "dispatch.adapters.lua"


def script(name: str) -> Script:
    """One of the stores' scripts (dispatch/adapters/lua/<name>.lua)."""
    return Script(name, package=_LUA)


def connect(url: str, *, cluster: bool, timeout_s: float = 2.0) -> AnyRedis:
    opts: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "decode_responses": False,
    }
    if cluster:
        return RedisCluster.from_url(url, max_connections=MAX_CONNECTIONS, **opts)
    # A blocking pool: a burst above the pool size queues (up to timeout_s) instead of
    # failing with "too many connections".
    pool = BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=timeout_s, health_check_interval=30, **opts
    )
    return Redis.from_pool(pool)


def call_id() -> str:
    """Names one call of a script that changes state: redis-py re-sends a command whose
    connection broke (mid-failover), and the script answers a re-sent call as it answered
    the first instead of judging its own earlier effect as someone else's."""
    return os.urandom(8).hex()


def driver_key(driver_id: str) -> str:
    # Tagged {<id>}, as the geo index tags its own record of the driver
    # (RedisGeoIndex.driver_key): one script reads the last fix time and the status.
    return f"dispatch:driver:{{{driver_id}}}"


def ride_key(ride_id: str) -> str:
    return f"dispatch:ride:{{{ride_id}}}"


def rider_rides_key(rider_id: str) -> str:
    return f"dispatch:rider:{{{rider_id}}}:rides"
