"""The Redis fixtures start real servers, apart from the machine's own Redis."""

import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster


async def test_single_redis_fixture_is_a_fresh_server_not_6379(redis_url: str) -> None:
    assert ":6379/" not in redis_url
    client = aredis.Redis.from_url(redis_url)
    try:
        assert await client.dbsize() == 0
    finally:
        await client.aclose()


async def test_cluster_fixture_has_three_masters_covering_all_slots(
    redis_cluster_url: str,
) -> None:
    client = RedisCluster.from_url(redis_cluster_url)
    try:
        info = await client.cluster_info()
        assert info["cluster_state"] == "ok"
        assert int(info["cluster_slots_assigned"]) == 16384
        assert int(info["cluster_size"]) == 3
    finally:
        await client.aclose()
