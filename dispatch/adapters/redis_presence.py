"""PresenceStore on Redis / Redis Cluster: one hash per driver under the driver's tag,
changed by lua/area_presence.lua (the rule of dispatch.domain.areas.presence_step)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dispatch.adapters.redis_client import UNTOUCHED_KEEP_MS, script
from dispatch.domain.areas import Crossing
from dispatch.service_layer.geofence import Step
from geoindex import ScriptRunner, translated

PRESENCE = script("area_presence")
CLEAR = script("area_presence_clear")
SCRIPTS = (PRESENCE, CLEAR)


def presence_key(driver_id: str) -> str:
    return f"dispatch:driver:{{{driver_id}}}:areas"


def _step(reply: list[bytes]) -> Step:
    flat = [bytes(x).decode() for x in reply]
    cut = flat.index("|")
    crossings = [(Crossing(flat[i]), flat[i + 1]) for i in range(0, cut, 2)]
    due = int(float(flat[cut + 1]))
    return crossings, frozenset(flat[cut + 2 :]), None if due < 0 else due


class RedisPresenceStore:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts
        self._r = scripts.client

    async def step_many(
        self, steps: Sequence[tuple[str, Mapping[str, int]]], now_ms: int
    ) -> list[Step]:
        """One script call per driver (each driver's hash is in its own slot), all sent
        in one round trip per node."""
        calls = []
        for driver_id, holding in steps:
            args: list[str | int] = [now_ms, UNTOUCHED_KEEP_MS, len(holding)]
            for area_id, dwell_ms in holding.items():
                args += [area_id, dwell_ms]
            calls.append((PRESENCE, [presence_key(driver_id)], args))
        return [_step(reply) for reply in await self._scripts.run(calls)]

    async def areas_of(self, driver_id: str) -> frozenset[str]:
        with translated():
            keys = await self._r.hkeys(presence_key(driver_id))
        return frozenset(bytes(k).decode() for k in keys)

    async def clear(self, driver_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        replies = await self._scripts.run([(CLEAR, [presence_key(d)], []) for d in driver_ids])
        return {
            d: frozenset(bytes(k).decode() for k in keys)
            for d, keys in zip(driver_ids, replies, strict=True)
            if keys
        }
