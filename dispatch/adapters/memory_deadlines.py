"""DeadlineQueue in process memory: a dict of item -> due time, scanned in due order."""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from dispatch.service_layer.ports import Claimed


class MemoryDeadlineQueue:
    def __init__(self) -> None:
        self._due: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []  # may hold outdated pairs; _due decides

    async def schedule(self, item: str, due_ms: int) -> None:
        self._due[item] = due_ms
        heapq.heappush(self._heap, (due_ms, item))

    async def schedule_many(
        self,
        due: Mapping[str, int],
        beside: str | None = None,
        keep_earlier: bool = False,
        near: str | None = None,
    ) -> None:
        for item, due_ms in due.items():  # one place: `beside` and `near` change nothing
            earlier = self._due.get(item)
            if keep_earlier and earlier is not None and earlier <= due_ms:
                continue
            await self.schedule(item, due_ms)

    async def cancel(self, item: str, near: str | None = None, by_name: bool = True) -> None:
        if by_name:  # no copy is ever kept apart from the item's one place
            self._due.pop(item, None)

    async def claim(self, now_ms: int, limit: int, retry_ms: int) -> list[Claimed]:
        out: list[Claimed] = []
        while self._heap and self._heap[0][0] <= now_ms and len(out) < limit:
            due, item = heapq.heappop(self._heap)
            if self._due.get(item) != due:
                continue  # rescheduled or cancelled since
            retry = now_ms + retry_ms
            self._due[item] = retry
            heapq.heappush(self._heap, (retry, item))
            out.append(Claimed(item, retry))
        return out

    async def done(self, claimed: Claimed) -> None:
        if self._due.get(claimed.item) == claimed.score:
            del self._due[claimed.item]

    async def again(self, claimed: Claimed, due_ms: int) -> None:
        await self.schedule(claimed.item, due_ms)
