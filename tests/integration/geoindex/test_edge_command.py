"""ScriptRunner.command: one plain command through the scripts' batch path, on a real
Redis and Redis Cluster; what that path leaves to redis-py is sent by redis-py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis import exceptions as rx

from dispatch.adapters.redis_client import connect
from geoindex import ScriptRunner

pytestmark = pytest.mark.redis


@pytest.fixture(params=["single", "cluster"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "single":
        c = connect(request.getfixturevalue("redis_url"), cluster=False)
    else:
        c = connect(request.getfixturevalue("redis_cluster_url"), cluster=True)
        await c.initialize()
    yield c
    await c.aclose()


async def test_a_command_answers_as_the_server_does(client: Any) -> None:
    runner = ScriptRunner(client)
    key = "edge:{cmd}:z"
    await client.delete(key)
    assert await runner.command(key, "ZADD", key, 5, "a") == 1
    assert await runner.command(key, "ZADD", key, 7, "a") == 0  # updated, none added
    assert await client.zscore(key, "a") == 7
    assert float(await runner.command(key, "ZSCORE", key, "a")) == 7


async def test_an_error_reply_is_raised_as_itself(client: Any) -> None:
    runner = ScriptRunner(client)
    key = "edge:{cmd}:text"
    await client.set(key, "x")
    with pytest.raises(rx.ResponseError, match="WRONGTYPE"):
        await runner.command(key, "ZADD", key, 1, "a")


async def test_without_the_batch_path_redis_py_sends_it(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEOINDEX_REDIS_PIPELINED", "0")
    runner = ScriptRunner(client)  # every command comes back FALLBACK from the batch path
    key = "edge:{cmd}:z2"
    await client.delete(key)
    assert await runner.command(key, "ZADD", key, 5, "a") == 1
    assert await client.zscore(key, "a") == 5


@pytest.mark.parametrize("pipelined", ["1", "0"])
async def test_commands_keep_their_order_on_each_node(
    client: Any, monkeypatch: pytest.MonkeyPatch, pipelined: str
) -> None:
    """Over several slots (and masters), each key's commands apply in the order given,
    whether the batch path or redis-py (the switch off) sends them."""
    monkeypatch.setenv("GEOINDEX_REDIS_PIPELINED", pipelined)
    runner = ScriptRunner(client)
    lists = [f"edge:{{cmd{i}}}:l" for i in range(12)]
    for k in lists:
        await client.delete(k)
    sent = [(k, ("RPUSH", k, n)) for n in range(5) for k in lists]
    replies = await runner.commands(sent)
    assert replies == [n + 1 for n in range(5) for _ in lists]
    for k in lists:
        assert await client.lrange(k, 0, -1) == [b"0", b"1", b"2", b"3", b"4"]
    assert await runner.commands([]) == []
