"""QueueStore in process memory: the airport queues, with the rules of lua/queue_*.lua."""

from __future__ import annotations

from collections.abc import Sequence


class _Queue:
    def __init__(self) -> None:
        self.places: dict[str, float] = {}  # driver -> place (entry time, ms)
        self.held: dict[str, str] = {}  # driver -> ride offered from the queue
        self.served: dict[str, str] = {}  # ride accepted from the queue -> driver

    def order(self) -> list[str]:
        return sorted(self.places, key=lambda d: (self.places[d], d))

    def back(self, now_ms: int) -> float:
        return max([float(now_ms), *(p + 1 for p in self.places.values())])


class MemoryQueueStore:
    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}

    def _q(self, area_id: str) -> _Queue:
        return self._queues.setdefault(area_id, _Queue())

    async def join(
        self, area_id: str, driver_id: str, now_ms: int, max_len: int
    ) -> tuple[bool, list[str]]:
        q = self._q(area_id)
        if driver_id in q.places or len(q.places) >= max_len:
            return False, q.order()
        q.places[driver_id] = q.back(now_ms)
        return True, q.order()

    async def leave(self, area_id: str, driver_id: str) -> tuple[bool, list[str]]:
        q = self._q(area_id)
        q.held.pop(driver_id, None)
        return q.places.pop(driver_id, None) is not None, q.order()

    async def claim(self, area_id: str, ride_id: str, excluded: Sequence[str]) -> str | None:
        q = self._q(area_id)
        for d in q.order():
            if d not in excluded and d not in q.held:
                q.held[d] = ride_id
                return d
        return None

    async def settle(
        self, area_id: str, driver_id: str, ride_id: str, how: str, now_ms: int
    ) -> tuple[bool, list[str]]:
        q = self._q(area_id)
        changed = False
        if how == "restore":
            if q.served.pop(ride_id, None) is not None:
                first = min(q.places.values(), default=None)
                q.places[driver_id] = now_ms if first is None else min(now_ms, first - 1)
                changed = True
        elif how == "forget":
            q.served.pop(ride_id, None)
        elif q.held.get(driver_id) == ride_id:
            del q.held[driver_id]
            changed = how != "keep"
            if how == "keep":
                pass  # the rider cancelled the offer: the place stays
            elif how == "back":
                del q.places[driver_id]
                q.places[driver_id] = q.back(now_ms)
            else:
                q.places.pop(driver_id, None)
                if how == "served":
                    q.served[ride_id] = driver_id
        return changed, q.order()

    async def order(self, area_id: str) -> list[str]:
        return self._q(area_id).order()

    async def held(self, area_id: str) -> dict[str, str]:
        return dict(self._q(area_id).held)
