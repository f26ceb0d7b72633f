"""PresenceStore in process memory: which areas each driver is counted in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dispatch.domain.areas import Presence, presence_step
from dispatch.service_layer.geofence import Step


class MemoryPresenceStore:
    def __init__(self) -> None:
        self._state: dict[str, Presence] = {}

    async def step_many(
        self, steps: Sequence[tuple[str, Mapping[str, int]]], now_ms: int
    ) -> list[Step]:
        return [self._step(driver_id, holding, now_ms) for driver_id, holding in steps]

    def _step(self, driver_id: str, holding: Mapping[str, int], now_ms: int) -> Step:
        new, crossings = presence_step(self._state.get(driver_id, {}), dict(holding), now_ms)
        if new:
            self._state[driver_id] = new
        else:
            self._state.pop(driver_id, None)
        pending = [since + dwell for since, dwell in new.values() if since is not None]
        return crossings, frozenset(new), min(pending, default=None)

    async def areas_of(self, driver_id: str) -> frozenset[str]:
        return frozenset(self._state.get(driver_id, {}))

    async def clear(self, driver_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        out = {d: frozenset(self._state.pop(d, {})) for d in driver_ids}
        return {d: areas for d, areas in out.items() if areas}
