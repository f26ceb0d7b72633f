"""The edge's own pipelining (geoindex.redis_pipeline) on a real Redis and Redis Cluster:
replies as redis-py gives them, redirections and missing scripts left to redis-py, and no
connection going back to its pool with replies still unread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis
from redis import exceptions as rx
from redis.asyncio import BlockingConnectionPool, RedisCluster

from dispatch.adapters.redis_client import connect
from geoindex import BackendUnavailable, Script, ScriptRunner
from geoindex.redis_pipeline import FALLBACK, Pipelined

pytestmark = pytest.mark.redis

ECHO = "return {KEYS[1], ARGV[1], 7, 'x'}"
FAILS = "return redis.error_reply('BOOM ' .. ARGV[1])"
INCR = "return redis.call('INCR', KEYS[1])"  # a runtime error on a key holding text
# Busy in Lua for ARGV[1] iterations (a million take Redis some 10 to 20 ms), so that a
# batch of them is still being answered when the caller gives up.
BUSY = "local x = 0 for i = 1, tonumber(ARGV[1]) do x = x + i end return x"


def script(tmp_path: Path, name: str, source: str) -> Script:
    path = tmp_path / f"{name}.lua"
    path.write_text(source)
    return Script.from_path(path)


@pytest.fixture(params=["single", "cluster"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """The service's kind of client, with one connection per node, so that whatever a
    call leaves on its connection meets the next call."""
    if request.param == "single":
        url = request.getfixturevalue("redis_url")
        pool = BlockingConnectionPool.from_url(url, max_connections=1, socket_timeout=5.0)
        c: Any = aredis.Redis.from_pool(pool)
    else:
        url = request.getfixturevalue("redis_cluster_url")
        c = RedisCluster.from_url(url, max_connections=1, socket_timeout=5.0)
        await c.initialize()
    yield c
    await c.aclose()


def keys(n: int) -> list[str]:
    return [f"t:{{k{i}}}" for i in range(n)]  # spread over the slots (and the masters)


async def test_replies_are_what_redis_py_gives(client: Any, tmp_path: Path) -> None:
    echo = script(tmp_path, "echo", ECHO)
    runner = ScriptRunner(client, [echo])
    calls = [(echo, [k], [f"arg {i}"]) for i, k in enumerate(keys(60))]
    await runner.load()
    direct = await Pipelined(client).run(
        [("EVALSHA", echo.sha, 1, k, a) for _, (k,), (a,) in calls], [c[1] for c in calls]
    )
    assert FALLBACK not in direct  # all of it went the fast way
    expected = [[k.encode(), a.encode(), 7, b"x"] for _, (k,), (a,) in calls]
    assert direct == expected
    assert await runner.run(calls) == expected
    assert await runner.call(echo, ["t:{one}"], [b"\x00bytes"]) == [
        b"t:{one}",
        b"\x00bytes",
        7,
        b"x",
    ]


async def test_error_replies_are_redis_pys(client: Any, tmp_path: Path) -> None:
    fails, incr = script(tmp_path, "fails", FAILS), script(tmp_path, "incr", INCR)
    runner = ScriptRunner(client, [fails, incr])
    await runner.load()
    await client.set("t:{text}", "not a number")
    commands = [("EVALSHA", fails.sha, 1, "t:{a}", "one"), ("EVALSHA", incr.sha, 1, "t:{text}")]
    ours = await Pipelined(client).run(commands, [["t:{a}"], ["t:{text}"]])
    theirs = [await _through_redis_py(client, c) for c in commands]
    assert [type(e) for e in ours] == [type(e) for e in theirs] == [rx.ResponseError] * 2
    assert [str(e) for e in ours] == [str(e) for e in theirs]
    assert str(ours[0]) == "BOOM one"
    with pytest.raises(rx.ResponseError, match="BOOM two"):
        await runner.run([(fails, ["t:{a}"], ["two"]), (incr, ["t:{b}"], [])])
    # the connection answered an error and stays in use: the next call is fine
    assert await runner.call(incr, ["t:{b}"], []) == 2


async def _through_redis_py(client: Any, command: tuple[Any, ...]) -> Any:
    try:
        return await client.execute_command(*command)
    except rx.ResponseError as exc:
        return exc


async def test_a_missing_script_is_loaded_and_run_once(client: Any, tmp_path: Path) -> None:
    incr = script(tmp_path, "incr", INCR)
    runner = ScriptRunner(client, [incr])
    await runner.load()
    await _flush_scripts(client)
    assert await Pipelined(client).run([("EVALSHA", incr.sha, 1, "t:{n}")], [["t:{n}"]]) == [
        FALLBACK
    ]
    assert await runner.run([(incr, [k], []) for k in keys(30)]) == [1] * 30
    assert await client.get("t:{k0}") == b"1"  # run once, not once per path


async def _flush_scripts(client: Any) -> None:
    if isinstance(client, RedisCluster):
        await client.execute_command("SCRIPT FLUSH", target_nodes=RedisCluster.PRIMARIES)
    else:
        await client.script_flush()


async def test_a_redirection_goes_to_redis_py_which_follows_it(client: Any, tmp_path: Path) -> None:
    if not isinstance(client, RedisCluster):
        pytest.skip("a single Redis never redirects")
    incr = script(tmp_path, "incr", INCR)
    runner = ScriptRunner(client, [incr])
    await runner.load()
    moved, stays = "t:{moved}", "t:{stays}"
    slot = client.keyslot(moved)
    manager = client.nodes_manager
    owner = manager.get_node_from_slot(slot)
    wrong = next(n for n in client.get_primaries() if n.name != owner.name)
    manager.slots_cache[slot] = [wrong]  # a stale slot map, as after a slot moved
    replies = await Pipelined(client).run(
        [("EVALSHA", incr.sha, 1, moved), ("EVALSHA", incr.sha, 1, stays)], [[moved], [stays]]
    )
    assert replies == [FALLBACK, 1]  # MOVED: not run; the other one ran
    assert await runner.run([(incr, [moved], []), (incr, [stays], [])]) == [1, 2]
    assert manager.get_node_from_slot(slot).name == owner.name  # redis-py learnt the route
    assert await runner.call(incr, [moved], []) == 2


@pytest.mark.parametrize("how", ["cancelled", "timed out"])
async def test_a_batch_given_up_midway_leaves_no_unread_replies(
    client: Any, tmp_path: Path, how: str
) -> None:
    busy, echo = script(tmp_path, "busy", BUSY), script(tmp_path, "echo", ECHO)
    runner = ScriptRunner(client, [busy, echo])
    await runner.load()
    # Half a second of Lua or more on one node (one key), given up after a fifth of it.
    batch = [(busy, ["t:{busy}"], [1_000_000])] * 25
    if how == "cancelled":
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(runner.run(batch), 0.1)
    else:
        _socket_timeouts(client, 0.1)
        with pytest.raises(BackendUnavailable, match="Timeout"):
            await runner.run(batch)
        if isinstance(client, RedisCluster):  # the slot map is read again first
            assert client._initialize
        _socket_timeouts(client, 5.0)
    # The same (only) connection, or its replacement, answers the next call with its own
    # reply, not with one of the busy script's counts still on the wire.
    for i in range(3):
        assert await runner.call(echo, ["t:{busy}"], [f"after {i}"]) == [
            b"t:{busy}",
            f"after {i}".encode(),
            7,
            b"x",
        ]


def _socket_timeouts(client: Any, seconds: float) -> None:
    if isinstance(client, RedisCluster):
        conns = [c for n in client.get_nodes() for c in n._connections]
        for node in client.get_nodes():  # and the connections a node opens from now on
            node.connection_kwargs["socket_timeout"] = seconds
    else:
        pool = client.connection_pool
        conns = [*pool._available_connections, *pool._in_use_connections]
        pool.connection_kwargs["socket_timeout"] = seconds
    assert conns
    for c in conns:
        c.socket_timeout = seconds


async def test_a_connection_the_server_closed_is_left_to_redis_pys_retry(
    client: Any, tmp_path: Path, redis_url: str
) -> None:
    if isinstance(client, RedisCluster):
        pytest.skip("the cluster client's own retry is covered by the failover tests")
    incr = script(tmp_path, "incr", INCR)
    service_like = connect(redis_url, cluster=False)  # one retry on a broken connection
    try:
        runner = ScriptRunner(service_like, [incr])
        assert await runner.run([(incr, ["t:{c}"], [])] * 2) == [1, 2]
        killed = await client.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1
        assert await runner.run([(incr, ["t:{c}"], []), (incr, ["t:{d}"], [])]) == [3, 1]
    finally:
        await service_like.aclose()
