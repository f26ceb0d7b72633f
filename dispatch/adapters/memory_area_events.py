"""AreaEventLog in process memory: a bounded log of area and queue events that this
instance's readers follow (the embedded backend has no other instance)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class MemoryAreaEventLog:
    def __init__(self, maxlen: int) -> None:
        self._log: deque[tuple[int, bytes]] = deque(maxlen=maxlen)
        self._last = 0
        self._changed = asyncio.Condition()

    async def append(self, events: list[bytes]) -> None:
        async with self._changed:
            for event in events:
                self._last += 1
                self._log.append((self._last, event))
            self._changed.notify_all()

    async def tail(self) -> str:
        return str(self._last)

    async def read(self, after: str, block_ms: int) -> tuple[str, list[bytes]]:
        start = int(after)
        async with self._changed:
            if self._last <= start:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), block_ms / 1000)
            got = [(i, e) for i, e in self._log if i > start]
        return (str(got[-1][0]) if got else after), [e for _, e in got]

    async def recent(self, count: int) -> list[bytes]:
        return [e for _, e in list(self._log)[-count:]]
