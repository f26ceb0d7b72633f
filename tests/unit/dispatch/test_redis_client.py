"""The cluster client as the service configures it (no Redis needed: nothing here
connects)."""

from __future__ import annotations

from redis.asyncio import RedisCluster

from dispatch.adapters.redis_client import connect


async def test_an_ask_to_a_master_missing_from_the_slot_map_finds_a_node() -> None:
    client = connect("redis://127.0.0.1:7000/0", cluster=True)
    assert isinstance(client, RedisCluster)
    try:
        # redis-py's ASK path looks the redirect's target up by name; a master added to a
        # live cluster is in no slot map read before it owned a slot.
        node = client.get_node(node_name="127.0.0.1:7006")
        assert node is not None and (node.host, node.port) == ("127.0.0.1", 7006)
        assert client.get_node(host="127.0.0.1", port=7006) is node
        # Looked up by address only, an unknown node is still unknown.
        assert client.get_node(host="127.0.0.1", port=7007) is None
        assert client.reinitialize_steps == 0
    finally:
        await client.aclose()
