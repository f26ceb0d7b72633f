"""RiderRideStore in process memory: rider id -> {ride id: when it was counted}."""

from __future__ import annotations

from dispatch.service_layer.ports import HeldRide


class MemoryRiderRideStore:
    def __init__(self) -> None:
        self._held: dict[str, dict[str, int]] = {}

    async def hold(self, rider_id: str, ride_id: str, now_ms: int, cap: int) -> list[HeldRide]:
        held = self._held.setdefault(rider_id, {})
        if ride_id in held:
            return []
        if len(held) >= cap:
            return [HeldRide(r, at) for r, at in held.items()]
        held[ride_id] = now_ms
        return []

    async def drop(self, rider_id: str, ride_id: str) -> None:
        held = self._held.get(rider_id)
        if held is None:
            return
        held.pop(ride_id, None)
        if not held:  # riders come and go: keep only those with a ride on
            del self._held[rider_id]
