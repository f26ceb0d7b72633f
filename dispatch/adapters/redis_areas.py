"""AreaStore on Redis / Redis Cluster: one hash of every area and a version counter, under
one hash tag (areas are few and read whole; every instance polls the counter)."""

from __future__ import annotations

from dispatch.adapters.area_codec import decode_area, encode_area
from dispatch.adapters.redis_client import script
from dispatch.domain.areas import Area
from geoindex import ScriptRunner, translated

PUT = script("area_put")
DELETE = script("area_delete")
LOAD = script("area_load")
SCRIPTS = (PUT, DELETE, LOAD)

AREAS_KEY = "dispatch:areas:{areas}"
VERSION_KEY = "dispatch:areas:{areas}:version"
_KEYS = [AREAS_KEY, VERSION_KEY]


class RedisAreaStore:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts
        self._r = scripts.client

    async def put(self, area: Area, max_areas: int) -> int | None:
        version = int(await self._scripts.call(PUT, _KEYS, [area.id, encode_area(area), max_areas]))
        return None if version < 0 else version

    async def delete(self, area_id: str) -> int | None:
        version = int(await self._scripts.call(DELETE, _KEYS, [area_id]))
        return None if version < 0 else version

    async def version(self) -> int:
        with translated():
            raw = await self._r.get(VERSION_KEY)
        return 0 if raw is None else int(raw)

    async def load(self) -> tuple[int, list[Area]]:
        flat = await self._scripts.call(LOAD, _KEYS, [])
        return int(flat[0]), [decode_area(bytes(flat[i])) for i in range(2, len(flat), 2)]
