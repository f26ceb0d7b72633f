"""PresenceStore in process memory: which areas each driver is counted in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dispatch.domain.areas import Crossing, Presence, presence_step


class MemoryPresenceStore:
    def __init__(self) -> None:
        self._state: dict[str, Presence] = {}

    async def step(
        self, driver_id: str, holding: Mapping[str, int], now_ms: int
    ) -> tuple[list[tuple[Crossing, str]], frozenset[str], int | None]:
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
