"""The Redis fixtures start real servers, apart from the machine's own Redis."""

import redis
from redis.cluster import RedisCluster as SyncCluster


def test_single_redis_fixture_is_a_fresh_server_not_6379(redis_url: str) -> None:
    assert ":6379/" not in redis_url
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    client.close()


def test_cluster_fixture_has_three_masters_covering_all_slots(redis_cluster_url: str) -> None:
    client = SyncCluster.from_url(redis_cluster_url)
    info = client.cluster_info()
    assert info["cluster_state"] == "ok"
    assert int(info["cluster_slots_assigned"]) == 16384
    assert int(info["cluster_size"]) == 3
    client.close()
