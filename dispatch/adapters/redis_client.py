"""Redis clients for the stores: one for a single Redis or a Redis Cluster, with timeouts
everywhere (a dead Redis must give an error quickly, never a hung request); the stores'
Lua scripts and key names. Scripts run, and errors translate, at geoindex's Redis edge
(geoindex.redis_edge): one runner and one BackendUnavailable for the whole service."""

from __future__ import annotations

import os
from typing import Any

import redis
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.cluster import PRIMARY
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError as RedisConnectionError

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


class _Cluster(RedisCluster):
    """redis-py's cluster client, following an ASK to a master it has not met: one added
    to a live cluster owns no slot until its first one has moved, so it is in no slot map
    redis-py has read, and redis-py fails the command on the missing node
    (redis/redis-py#4015) instead of asking it."""

    def get_node(
        self, host: str | None = None, port: int | None = None, node_name: str | None = None
    ) -> ClusterNode | None:
        node = super().get_node(host, port, node_name)
        if node is None and node_name is not None:  # the ASK path looks nodes up by name
            host, _, port_text = node_name.rpartition(":")
            manager = self.nodes_manager
            node = ClusterNode(host, int(port_text), PRIMARY, **manager.connection_kwargs)
            manager.set_nodes(manager.nodes_cache, {node.name: node})
        return node


def connect(url: str, *, cluster: bool, timeout_s: float = 2.0) -> AnyRedis:
    opts: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "decode_responses": False,
        # The version CLIENT SETINFO reports, given: by default redis-py reads it from
        # the package's metadata for every new connection, about 4 ms of CPU each.
        "driver_info": DriverInfo(lib_version=redis.__version__),
    }
    if cluster:
        # reinitialize_steps=0: on a MOVED (a slot moved, a replica promoted) patch the
        # slot map from the redirect. redis-py's default rebuilds the map every fifth
        # MOVED by closing every connection, failing the commands in flight on them:
        # during a live reshard, most of its 503s (tests/reliability/test_live_reshard.py).
        return _Cluster.from_url(url, max_connections=MAX_CONNECTIONS, reinitialize_steps=0, **opts)
    # A blocking pool: a burst above the pool size queues (up to timeout_s) instead of
    # failing with "too many connections".
    # One retry on a fresh connection when a pooled one turns out broken: after Redis
    # restarts, every idle connection in the pool is dead, and without it each would fail
    # one request. Timeouts are not retried (a hung Redis answers 503 within timeout_s);
    # a re-sent script is safe (call_id).
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout_s,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        retry_on_error=[RedisConnectionError],
        **opts,
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
