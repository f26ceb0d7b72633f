"""RideStore in process memory. Rides are immutable values, so storing the object is safe.
Finished rides are dropped `retention_ms` after their last change, as Redis expires them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dispatch.adapters.memory_idempotency import MemoryIdempotencyStore
from dispatch.domain.rides import TERMINAL, Ride
from dispatch.service_layer.ports import Answer


class MemoryRideStore:
    def __init__(
        self,
        clock: Callable[[], int],
        retention_ms: int = 24 * 3600 * 1000,
        answers: MemoryIdempotencyStore | None = None,
    ) -> None:
        self._clock = clock
        self._answers = answers  # where create's `answer` is stored (the embedded backend's)
        self._retention_ms = retention_ms
        self._rides: dict[str, Ride] = {}
        self._finished: dict[str, int] = {}  # ride id -> drop time, in finishing order

    def _purge(self) -> None:
        now = self._clock()
        while self._finished:
            ride_id, drop_at = next(iter(self._finished.items()))
            if drop_at > now:
                break
            del self._finished[ride_id]
            self._rides.pop(ride_id, None)

    def _put(self, ride: Ride) -> None:
        self._rides[ride.id] = ride
        if ride.status in TERMINAL:
            self._finished[ride.id] = self._clock() + self._retention_ms

    async def create(self, ride: Ride, answer: Answer | None = None) -> bool:
        self._purge()
        if ride.id in self._rides:
            return False
        if answer is not None and self._answers is None:
            raise ValueError("no idempotency store to keep the answer in")
        self._put(ride)
        if answer is not None and self._answers is not None:  # no await in it: one step
            await self._answers.finish(answer.key, answer.token, answer.payload, answer.ttl_ms)
        return True

    async def get(self, ride_id: str) -> Ride | None:
        return self._rides.get(ride_id)

    async def get_many(self, ride_ids: Sequence[str]) -> list[Ride | None]:
        return [self._rides.get(i) for i in ride_ids]

    async def kept(self, ride_id: str) -> None:
        return None  # one process: nothing to replicate

    async def replace(self, ride: Ride) -> bool:
        current = self._rides.get(ride.id)
        if current is None or current.version != ride.version - 1:
            return False
        self._put(ride)
        return True

    async def replace_many(self, rides: Sequence[Ride]) -> list[bool]:
        return [await self.replace(r) for r in rides]
