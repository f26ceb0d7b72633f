"""Rounds: concurrent searches' script calls leave together, one batch per round."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from geoindex import BackendUnavailable, Script
from geoindex.redis_edge import Call
from geoindex.rounds import Asked, Rounds, send_together

KNN = Script("knn")


def call(name: str) -> Call:
    return (KNN, [name], [])


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail

    async def run(self, calls: Sequence[Call]) -> list[Any]:
        await asyncio.sleep(0)
        names = [c[1][0] for c in calls]
        self.batches.append(names)
        if self.fail:
            raise BackendUnavailable("redis unavailable")
        return [f"reply:{n}" for n in names]


async def search(rounds: Rounds, name: str, steps: int) -> list[Any]:
    """Asks for `steps` rounds of two calls each, then ends."""
    got = []
    try:
        for step in range(steps):
            got += await rounds.run([call(f"{name}{step}a"), call(f"{name}{step}b")])
    finally:
        await rounds.leave()
    return got


async def test_each_round_sends_every_open_search_once_and_answers_each_its_own() -> None:
    rec = Recorder()
    rounds = Rounds(rec.run, 3)
    got = await asyncio.gather(
        search(rounds, "x", 1), search(rounds, "y", 3), search(rounds, "z", 2)
    )
    assert got[0] == ["reply:x0a", "reply:x0b"]
    assert got[1] == [f"reply:y{s}{c}" for s in range(3) for c in "ab"]
    assert got[2] == [f"reply:z{s}{c}" for s in range(2) for c in "ab"]
    # Round 1: all three; round 2: y and z (x ended); round 3: y alone.
    assert [sorted(b) for b in rec.batches] == [
        ["x0a", "x0b", "y0a", "y0b", "z0a", "z0b"],
        ["y1a", "y1b", "z1a", "z1b"],
        ["y2a", "y2b"],
    ]


async def test_a_failed_round_fails_every_search_in_it() -> None:
    rec = Recorder(fail=True)
    rounds = Rounds(rec.run, 3)
    results = await asyncio.gather(
        *(search(rounds, name, 2) for name in "xyz"), return_exceptions=True
    )
    assert all(isinstance(r, BackendUnavailable) for r in results)
    assert len(rec.batches) == 1


async def test_a_search_that_fails_on_its_own_does_not_stall_the_others() -> None:
    rec = Recorder()
    rounds = Rounds(rec.run, 2)

    async def broken() -> None:
        try:
            raise ValueError("a bug of its own")
        finally:
            await rounds.leave()

    other = asyncio.ensure_future(search(rounds, "y", 2))
    with pytest.raises(ValueError):
        await broken()
    assert await asyncio.wait_for(other, 5) == [f"reply:y{s}{c}" for s in range(2) for c in "ab"]
    assert rec.batches == [["y0a", "y0b"], ["y1a", "y1b"]]


async def test_the_first_callers_of_a_batch_go_on_a_turn_before_the_rest() -> None:
    rec = Recorder()
    loop = asyncio.get_running_loop()
    asked: Asked = [([call(n), call(n + "2")], loop.create_future()) for n in "abcd"]
    # What each caller saw when it went on: its replies, and who else had theirs.
    seen: list[tuple[list[Any], list[bool]]] = []

    async def caller(i: int) -> None:
        got = await asked[i][1]
        seen.append((got, [waiting.done() for _, waiting in asked]))

    callers = [asyncio.ensure_future(caller(i)) for i in range(4)]
    await send_together(rec.run, asked, first=2)
    await asyncio.gather(*callers)
    assert [got for got, _ in seen] == [[f"reply:{n}", f"reply:{n}2"] for n in "abcd"]
    assert [done for _, done in seen[:2]] == [[True, True, False, False]] * 2
    assert [done for _, done in seen[2:]] == [[True] * 4] * 2
    assert len(rec.batches) == 1
