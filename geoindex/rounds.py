"""Rounds: the script calls of concurrent searches sent together, one pipeline per round.

A search's k-nearest loop (geoindex/knn.py) asks for one step's scans at a time. Many
searches run together (nearest_many) ask through one Rounds: each round waits until every
search still running has asked for its next step or ended, then all their calls go out
in one pipeline (one round trip per node). The loop itself is unchanged; only where its
calls go differs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from geoindex.redis_edge import Call

Run = Callable[[Sequence[Call]], Awaitable[list[Any]]]
Asked = list[tuple[Sequence[Call], asyncio.Future[list[Any]]]]  # each caller's calls, its replies


class Rounds:
    def __init__(self, run: Run, searches: int) -> None:
        self._run = run
        self._open = searches  # searches that may still ask
        self._asked: Asked = []

    async def run(self, calls: Sequence[Call]) -> list[Any]:
        """The replies to `calls`, once the round they joined has been sent."""
        mine: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._asked.append((calls, mine))
        await self._send_if_complete(mine)
        return await mine

    async def leave(self) -> None:
        """A search ended (or failed): the round no longer waits for it."""
        self._open -= 1
        await self._send_if_complete(None)

    async def _send_if_complete(self, own: asyncio.Future[list[Any]] | None) -> None:
        if not self._asked or len(self._asked) < self._open:
            return
        asked, self._asked = self._asked, []
        await send_together(self._run, asked, own)


async def send_together(
    run: Run, asked: Asked, own: asyncio.Future[list[Any]] | None = None, first: int = 0
) -> None:
    """Every caller's calls in one batch, each caller's future given its own replies;
    if the batch fails, every caller fails as its own call would have (but `own`, whose
    caller gets the failure raised here). With `first`, the first `first` callers get
    theirs a turn of the event loop before the rest: what they ask next leaves while the
    rest are still at work, so that Redis and this process work at the same time."""
    try:
        replies = await run([c for calls, _ in asked for c in calls])
    except BaseException as exc:
        for _, waiting in asked:
            if waiting is own or waiting.done():
                continue
            if isinstance(exc, asyncio.CancelledError):
                waiting.cancel()
            else:
                waiting.set_exception(exc)
        raise
    split = sum(len(calls) for calls, _ in asked[:first])
    _hand_out(asked[:first], replies[:split])
    if 0 < first < len(asked):
        try:
            await asyncio.sleep(0)
        finally:  # even if cancelled meanwhile: the rest wait for nothing else
            _hand_out(asked[first:], replies[split:])
    else:
        _hand_out(asked[first:], replies[split:])


def _hand_out(asked: Asked, replies: list[Any]) -> None:
    start = 0
    for calls, waiting in asked:
        if not waiting.done():
            waiting.set_result(replies[start : start + len(calls)])
        start += len(calls)
