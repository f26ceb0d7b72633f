"""PendingStore in memory (the embedded backend): the same lease semantics as Redis."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dispatch.adapters.memory_leases import MemoryLeases
from dispatch.service_layer.match_window import Pending


class MemoryPendingStore:
    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._queues: dict[int, dict[str, int]] = {}
        self._added: dict[int, int] = {}  # region -> last add (ms)
        self._leases = MemoryLeases(clock)

    async def add(self, region: int, ride_id: str, now_ms: int) -> None:
        self._queues.setdefault(region, {})[ride_id] = now_ms
        self._added[region] = max(self._added.get(region, 0), now_ms)

    async def pending(self, region: int, limit: int) -> list[Pending]:
        queue = self._queues.get(region, {})
        oldest = sorted(queue.items(), key=lambda kv: (kv[1], kv[0]))[:limit]
        return [Pending(r, since) for r, since in oldest]

    async def remove(self, region: int, ride_ids: Sequence[str]) -> None:
        queue = self._queues.get(region)
        if queue is None:
            return
        for r in ride_ids:
            queue.pop(r, None)
        if not queue:
            del self._queues[region]

    async def regions(self, since_ms: int) -> list[int]:
        live = set(self._queues) | {r for r, t in self._added.items() if t >= since_ms}
        return sorted(live)

    async def take_lease(
        self, region: int, holder: str, ttl_ms: int, resume: int = 0
    ) -> int | None:
        return self._leases.take(region, holder, ttl_ms, resume)

    async def drop_lease(self, region: int, holder: str, fence: int) -> None:
        self._leases.drop(region, holder, fence)
