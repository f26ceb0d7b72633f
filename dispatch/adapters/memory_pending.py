"""PendingStore in memory (the embedded backend): the same lease semantics as Redis."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from dispatch.adapters.memory_leases import MemoryLeases
from dispatch.service_layer.match_window import Hold, Pending, Queued

_V = TypeVar("_V")


class MemoryPendingStore:
    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._queues: dict[int, dict[str, int]] = {}
        self._added: dict[int, int] = {}  # region -> last add (ms)
        self._holds: dict[int, dict[str, Hold]] = {}  # region -> ride id -> hold
        self._leases = MemoryLeases(clock)

    async def add(self, region: int, ride_id: str, now_ms: int) -> None:
        self._queues.setdefault(region, {})[ride_id] = now_ms
        self._added[region] = max(self._added.get(region, 0), now_ms)

    async def pending(self, region: int, limit: int) -> Queued:
        queue = self._queues.get(region, {})
        oldest = sorted(queue.items(), key=lambda kv: (kv[1], kv[0]))[:limit]
        holds = list(self._holds.get(region, {}).values())
        return Queued([Pending(r, since) for r, since in oldest], holds)

    async def hold(
        self, region: int, holder: str, fence: int, ttl_ms: int, chosen: Mapping[str, str]
    ) -> bool:
        if not self._leases.holds(region, holder, fence):
            return False
        self._leases.take(region, holder, ttl_ms, fence)  # renewed
        noted = self._holds.setdefault(region, {})
        for ride_id, driver_id in chosen.items():
            noted[ride_id] = Hold(ride_id, driver_id, fence)
        return True

    async def remove(self, region: int, ride_ids: Sequence[str], holds: Sequence[str] = ()) -> None:
        _drop(self._queues, region, ride_ids)
        _drop(self._holds, region, holds)

    async def regions(self, since_ms: int) -> list[int]:
        live = set(self._queues) | {r for r, t in self._added.items() if t >= since_ms}
        return sorted(live)

    async def take_lease(
        self, region: int, holder: str, ttl_ms: int, resume: int = 0
    ) -> int | None:
        return self._leases.take(region, holder, ttl_ms, resume)

    async def drop_lease(self, region: int, holder: str, fence: int) -> None:
        self._leases.drop(region, holder, fence)


def _drop(table: dict[int, dict[str, _V]], region: int, keys: Sequence[str]) -> None:
    entries = table.get(region)
    if entries is None:
        return
    for key in keys:
        entries.pop(key, None)
    if not entries:
        del table[region]
