"""RiderRideStore in process memory: rider id -> {ride id: when it was counted}; a ride
request's token is taken from the embedded backend's rider buckets (MemoryLimitStore)."""

from __future__ import annotations

from dispatch.adapters.memory_rider_limits import MemoryLimitStore
from dispatch.service_layer.ports import HeldRide
from dispatch.service_layer.rider_limits import Rate


class MemoryRiderRideStore:
    def __init__(self, limits: MemoryLimitStore | None = None) -> None:
        self._held: dict[str, dict[str, int]] = {}
        self._limits = limits or MemoryLimitStore()  # the rider limits' own, when wired

    async def hold(self, rider_id: str, ride_id: str, now_ms: int, cap: int) -> list[HeldRide]:
        held = self._held.setdefault(rider_id, {})
        if ride_id in held:
            return []
        if len(held) >= cap:
            return [HeldRide(r, at) for r, at in held.items()]
        held[ride_id] = now_ms
        return []

    async def admit(
        self, rider_id: str, ride_id: str, now_ms: int, cap: int, action: str, rate: Rate
    ) -> tuple[int, list[HeldRide]]:
        # No await between the two: one step, as the Redis script's.
        wait_ms = self._limits.take_now(rider_id, action, rate, now_ms)
        if wait_ms > 0:
            return wait_ms, []
        return 0, await self.hold(rider_id, ride_id, now_ms, cap)

    async def drop(self, rider_id: str, ride_id: str) -> None:
        held = self._held.get(rider_id)
        if held is None:
            return
        held.pop(ride_id, None)
        if not held:  # riders come and go: keep only those with a ride on
            del self._held[rider_id]
