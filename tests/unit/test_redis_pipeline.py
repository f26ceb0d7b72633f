"""The edge's own pipelining, without a server: what it leaves to redis-py untouched."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aredis

from geoindex.redis_pipeline import FALLBACK, Pipelined

NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens here
CALL = ("EVALSHA", "0" * 40, 1, "k:{a}", "x")


def connections_taken(client: Any) -> int:
    pool = client.connection_pool
    return len(pool._available_connections) + len(pool._in_use_connections)


async def test_a_client_it_does_not_know_gets_everything_back() -> None:
    client: Any = aredis.Redis.from_url(NOWHERE)
    for other in (object(), client.pipeline(transaction=False)):
        assert await Pipelined(other).run([CALL, CALL], [["k:{a}"], ["k:{b}"]]) == [FALLBACK] * 2
    assert connections_taken(client) == 0


async def test_a_single_connection_client_is_left_to_redis_py() -> None:
    client = aredis.Redis.from_url(NOWHERE, single_connection_client=True)
    assert await Pipelined(client).run([CALL], [["k:{a}"]]) == [FALLBACK]
    assert client.connection is None  # redis-py takes its one connection on first use


async def test_an_argument_redis_py_rejects_is_left_to_redis_py() -> None:
    client = aredis.Redis.from_url(NOWHERE)
    bad = ("EVALSHA", "0" * 40, 1, "k:{a}", True)  # redis-py answers DataError
    assert await Pipelined(client).run([bad, (*bad[:4], None)], [["k:{a}"]] * 2) == [FALLBACK] * 2
    assert connections_taken(client) == 0


async def test_switched_off_it_leaves_everything_to_redis_py(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GEOINDEX_REDIS_PIPELINED", "0")
    client = aredis.Redis.from_url(NOWHERE)
    assert await Pipelined(client).run([CALL], [["k:{a}"]]) == [FALLBACK]
    assert connections_taken(client) == 0
