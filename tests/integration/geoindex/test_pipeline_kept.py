"""The edge's pipelining on a single Redis keeps a few connections between batches (from a
pool that can spare them), and the batches' deadlines are kept by one timer: a batch past
its deadline still fails as a timeout, leaves nothing unread, and any other cancellation
stays a cancellation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from dispatch.adapters.redis_client import connect
from geoindex import BackendUnavailable, Script, ScriptRunner
from geoindex.redis_pipeline import KEEP_CONNECTIONS

pytestmark = pytest.mark.redis

ECHO = "return {KEYS[1], ARGV[1]}"
BUSY = "local x = 0 for i = 1, tonumber(ARGV[1]) do x = x + i end return x"


def _script(tmp_path: Path, name: str, source: str) -> Script:
    path = tmp_path / f"{name}.lua"
    path.write_text(source)
    return Script.from_path(path)


def _in_use(client: Any) -> int:
    return len(client.connection_pool._in_use_connections)


async def test_a_batchs_connection_is_kept_for_the_next(redis_url: str, tmp_path: Path) -> None:
    echo = _script(tmp_path, "echo", ECHO)
    client = connect(redis_url, cluster=False)
    try:
        runner = ScriptRunner(client, [echo])
        await runner.load()
        assert await runner.call(echo, ["t:{a}"], ["1"]) == [b"t:{a}", b"1"]
        assert _in_use(client) == 1  # kept, out of the pool
        kept = next(iter(client.connection_pool._in_use_connections))
        many = await asyncio.gather(
            *(runner.call(echo, [f"t:{{{i}}}"], [str(i)]) for i in range(20))
        )
        assert many == [[f"t:{{{i}}}".encode(), str(i).encode()] for i in range(20)]
        assert 1 <= _in_use(client) <= KEEP_CONNECTIONS
        assert kept in client.connection_pool._in_use_connections
        assert await client.ping()  # redis-py's own calls still find a connection
    finally:
        await client.aclose()


async def test_a_small_pool_keeps_none(redis_url: str, tmp_path: Path) -> None:
    echo = _script(tmp_path, "echo", ECHO)
    client = Redis.from_pool(BlockingConnectionPool.from_url(redis_url, max_connections=2))
    try:
        runner = ScriptRunner(client, [echo])
        assert await runner.call(echo, ["t:{a}"], ["1"]) == [b"t:{a}", b"1"]
        assert _in_use(client) == 0
    finally:
        await client.aclose()


async def test_a_kept_connection_past_its_deadline_times_out_and_leaves_nothing_unread(
    redis_url: str, tmp_path: Path
) -> None:
    busy, echo = _script(tmp_path, "busy", BUSY), _script(tmp_path, "echo", ECHO)
    client = connect(redis_url, cluster=False, timeout_s=5.0)
    try:
        runner = ScriptRunner(client, [busy, echo])
        await runner.load()
        assert await runner.call(echo, ["t:{busy}"], ["before"]) == [b"t:{busy}", b"before"]
        pool = client.connection_pool
        for c in [*pool._available_connections, *pool._in_use_connections]:
            c.socket_timeout = 0.1
        started = asyncio.get_running_loop().time()
        with pytest.raises(BackendUnavailable, match="Timeout"):
            await runner.run([(busy, ["t:{busy}"], [1_000_000])] * 25)
        assert asyncio.get_running_loop().time() - started < 2.0
        for c in [*pool._available_connections, *pool._in_use_connections]:
            c.socket_timeout = 5.0  # Redis still runs what the batch left it
        for i in range(3):
            assert await runner.call(echo, ["t:{busy}"], [f"after {i}"]) == [
                b"t:{busy}",
                f"after {i}".encode(),
            ]
    finally:
        await client.aclose()


async def test_a_cancellation_is_not_taken_for_the_deadline(redis_url: str, tmp_path: Path) -> None:
    busy, echo = _script(tmp_path, "busy", BUSY), _script(tmp_path, "echo", ECHO)
    client = connect(redis_url, cluster=False, timeout_s=5.0)
    try:
        runner = ScriptRunner(client, [busy, echo])
        await runner.load()
        task = asyncio.create_task(runner.run([(busy, ["t:{busy}"], [1_000_000])] * 25))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await runner.call(echo, ["t:{busy}"], ["after"]) == [b"t:{busy}", b"after"]
    finally:
        await client.aclose()
