"""Batches given together (geoindex.redis_pipeline.together) on a real Redis and Redis
Cluster: the ones for one node go out in one write, each caller gets its own replies, and a
caller cancelled before the write cancels no one else's commands."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from geoindex import ScriptRunner
from geoindex.redis_pipeline import Pipelined, together

pytestmark = pytest.mark.redis

A, B = "t:{same}a", "t:{same}b"  # one slot, so one node


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of commands in each write to a node."""
    sizes: list[int] = []
    send = Pipelined._send

    async def counted(self: Pipelined, node: Any, indices: Any, packed: Any, replies: Any) -> None:
        sizes.append(len(packed))
        await send(self, node, indices, packed, replies)

    monkeypatch.setattr(Pipelined, "_send", counted)
    return sizes


async def test_batches_given_together_to_one_node_go_out_in_one_write(
    client: Any, writes: list[int]
) -> None:
    await client.delete(A, B)
    one, other = ScriptRunner(client), ScriptRunner(client)  # as two stores have
    with together():
        got = await asyncio.gather(
            one.commands([(A, ("INCRBY", A, 5)), (A, ("GET", A))]),
            other.commands([(B, ("INCRBY", B, 7))]),
        )
    assert got == [[5, b"5"], [7]]
    assert writes == [3]
    writes.clear()
    await asyncio.gather(one.command(A, "INCR", A), other.command(B, "INCR", B))
    assert writes == [1, 1]  # outside together(): each its own write


async def test_a_caller_cancelled_before_the_write_leaves_the_others_sent(
    client: Any, writes: list[int]
) -> None:
    await client.delete(A, B)
    one, other = ScriptRunner(client), ScriptRunner(client)
    with together():
        first = asyncio.create_task(one.command(A, "INCR", A))
        second = asyncio.create_task(other.command(B, "INCR", B))
    await asyncio.sleep(0)  # the first is waiting for others to join it, the second joined
    first.cancel()
    assert await second == 1
    with pytest.raises(asyncio.CancelledError):
        await first
    assert writes == [1]
    assert await client.get(A) is None  # never sent
