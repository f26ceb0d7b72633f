"""PendingStore in memory (the embedded backend): the same lease semantics as Redis."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dispatch.service_layer.match_window import Pending


@dataclass
class _Lease:
    holder: str
    fence: int
    until_ms: int


class MemoryPendingStore:
    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._queues: dict[int, dict[str, int]] = {}
        self._added: dict[int, int] = {}  # region -> last add (ms)
        self._leases: dict[int, _Lease] = {}
        self._fences: dict[int, int] = {}

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

    async def take_lease(self, region: int, holder: str, ttl_ms: int) -> int | None:
        now = self._clock()
        lease = self._leases.get(region)
        if lease is not None and lease.until_ms > now:
            if lease.holder != holder:
                return None
            lease.until_ms = now + ttl_ms
            return lease.fence
        fence = self._fences[region] = self._fences.get(region, 0) + 1
        self._leases[region] = _Lease(holder, fence, now + ttl_ms)
        return fence

    async def drop_lease(self, region: int, holder: str, fence: int) -> None:
        lease = self._leases.get(region)
        if lease is not None and (lease.holder, lease.fence) == (holder, fence):
            del self._leases[region]
