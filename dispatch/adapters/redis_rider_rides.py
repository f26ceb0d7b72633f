"""RiderRideStore on Redis / Redis Cluster: one sorted set per rider, tagged with the
rider id, changed by lua/rider_hold.lua (count unless full) and ZREM."""

from __future__ import annotations

from dispatch.adapters.redis_client import UNTOUCHED_KEEP_MS, rider_rides_key, script
from dispatch.service_layer.ports import HeldRide
from geoindex import ScriptRunner, translated

HOLD = script("rider_hold")
SCRIPTS = (HOLD,)


class RedisRiderRideStore:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts
        self._r = scripts.client

    async def hold(self, rider_id: str, ride_id: str, now_ms: int, cap: int) -> list[HeldRide]:
        args: list[str | int] = [ride_id, now_ms, cap, UNTOUCHED_KEEP_MS]
        flat = await self._scripts.call(HOLD, [rider_rides_key(rider_id)], args)
        return [
            HeldRide(bytes(flat[i]).decode(), int(float(flat[i + 1])))
            for i in range(0, len(flat), 2)
        ]

    async def drop(self, rider_id: str, ride_id: str) -> None:
        with translated():
            await self._r.zrem(rider_rides_key(rider_id), ride_id)
