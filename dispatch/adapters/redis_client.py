"""Redis clients for the stores: one for a single Redis or a Redis Cluster, with timeouts
everywhere (a dead Redis must give an error quickly, never a hung request), and the
translation of Redis errors into BackendUnavailable."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from redis import exceptions as rx
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster

from dispatch.service_layer.errors import BackendUnavailable

AnyRedis = Redis | RedisCluster
LUA_DIR = Path(__file__).parent / "lua"


MAX_CONNECTIONS = 256  # per instance (and per cluster node); a burst waits for a free one


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


@contextmanager
def translated() -> Iterator[None]:
    """Redis errors (down, timeout, failover in progress) become BackendUnavailable.
    A script error is a bug, not an outage, and stays what it is."""
    try:
        yield
    except rx.NoScriptError:
        raise
    except (rx.ConnectionError, rx.TimeoutError, rx.ClusterError, rx.BusyLoadingError) as exc:
        raise BackendUnavailable(f"redis: {exc}") from exc
    except (rx.ClusterDownError, rx.TryAgainError, rx.ReadOnlyError, rx.MasterDownError) as exc:
        raise BackendUnavailable(f"redis: {exc}") from exc
    except (OSError, TimeoutError) as exc:
        raise BackendUnavailable(f"redis: {exc!r}") from exc


async def preload_scripts(client: AnyRedis) -> None:
    """SCRIPT LOAD every script up front (on a cluster: on every primary; replicas get
    them by replication). Loading them lazily means a burst of NOSCRIPT replies under load,
    and redis-py's async cluster client answers that by dropping connections in use."""
    with translated():
        for path in sorted(LUA_DIR.glob("*.lua")):
            await client.script_load(path.read_text())


def lua(name: str) -> str:
    return (LUA_DIR / f"{name}.lua").read_text()


def call_id() -> str:
    """Names one call of a script that changes state: redis-py re-sends a command whose
    connection broke (mid-failover), and the script answers a re-sent call as it answered
    the first instead of judging its own earlier effect as someone else's."""
    return os.urandom(8).hex()


def driver_key(driver_id: str) -> str:
    # The hash tag is the geo index's own tag for this driver: gi:d:{<id>} lives in the
    # same slot, so one script reads the driver's last fix time and its status.
    return f"dispatch:driver:{{{driver_id}}}"


def index_key(driver_id: str) -> str:
    return f"gi:d:{{{driver_id}}}"


def ride_key(ride_id: str) -> str:
    return f"dispatch:ride:{{{ride_id}}}"


def rider_rides_key(rider_id: str) -> str:
    return f"dispatch:rider:{{{rider_id}}}:rides"
