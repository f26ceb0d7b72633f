"""AreaStore in process memory: the embedded backend's areas, with a version counter."""

from __future__ import annotations

from dispatch.adapters.area_codec import decode_area, encode_area
from dispatch.domain.areas import Area


class MemoryAreaStore:
    def __init__(self) -> None:
        self._areas: dict[str, bytes] = {}  # stored encoded, as Redis holds them
        self._version = 0

    async def put(self, area: Area, max_areas: int) -> int | None:
        if area.id not in self._areas and len(self._areas) >= max_areas:
            return None
        self._areas[area.id] = encode_area(area)
        self._version += 1
        return self._version

    async def delete(self, area_id: str) -> int | None:
        if self._areas.pop(area_id, None) is None:
            return None
        self._version += 1
        return self._version

    async def version(self) -> int:
        return self._version

    async def load(self) -> tuple[int, list[Area]]:
        return self._version, [decode_area(raw) for raw in self._areas.values()]
