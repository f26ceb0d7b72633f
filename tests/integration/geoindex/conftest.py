"""A GeoIndex factory per backend: embedded, single Redis, Redis Cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster

from geoindex import CoalescingGeoIndex, GeoIndex, MemoryGeoIndex, RedisGeoIndex, SearchConfig

# "coalesced": the Redis Cluster backend behind CoalescingGeoIndex, as the service uses it.
BACKENDS = ["memory", "redis", "cluster", "coalesced"]


class Clock:
    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Any]]:
    """(name, raw redis client or None) with the backend's servers flushed."""
    name = request.param
    if name == "memory":
        yield name, None
        return
    url = request.getfixturevalue("redis_url" if name == "redis" else "redis_cluster_url")
    client = aredis.Redis.from_url(url) if name == "redis" else RedisCluster.from_url(url)
    yield name, client
    await client.aclose()


MakeIndex = Callable[..., GeoIndex]


@pytest.fixture
def make_index(backend: tuple[str, Any], clock: Clock) -> MakeIndex:
    name, client = backend

    def make(
        ttl_ms: int = 30_000,
        config: SearchConfig | None = None,
        prefix: str = "gi",
        new_drivers_available: bool = True,
        default_products: tuple[str, ...] | list[str] = (),
    ) -> GeoIndex:
        opts = {
            "ttl_ms": ttl_ms,
            "clock": clock,
            "config": config,
            "new_drivers_available": new_drivers_available,
            "default_products": default_products,
        }
        if name == "memory":
            return MemoryGeoIndex(**opts)  # type: ignore[arg-type]
        redis_index = RedisGeoIndex(client, prefix=prefix, **opts)
        return CoalescingGeoIndex(redis_index) if name == "coalesced" else redis_index

    return make


@pytest.fixture
def index(make_index: MakeIndex) -> GeoIndex:
    return make_index()


def driver_key(index: GeoIndex, driver_id: str) -> str:
    """The Redis key of a driver's own state, through a CoalescingGeoIndex too."""
    redis_index = getattr(index, "inner", index)
    assert isinstance(redis_index, RedisGeoIndex)
    return redis_index.driver_key(driver_id)


@pytest.fixture
def raw_redis(backend: tuple[str, Any]) -> Any:
    return backend[1]


@pytest.fixture(params=["redis", "cluster"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A plain redis-py client on a single Redis and on a cluster, for tests that call
    scripts or the index's own helpers directly (a file needing another kind of client,
    such as the service's, defines its own `client`)."""
    if request.param == "redis":
        raw: Any = aredis.Redis.from_url(request.getfixturevalue("redis_url"))
    else:
        raw = RedisCluster.from_url(request.getfixturevalue("redis_cluster_url"))
    yield raw
    await raw.aclose()
