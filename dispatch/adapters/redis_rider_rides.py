"""RiderRideStore on Redis / Redis Cluster: one sorted set per rider, tagged with the
rider id, changed by lua/rider_hold.lua (count unless full) and ZREM."""

from __future__ import annotations

from dispatch.adapters.redis_client import AnyRedis, lua, rider_rides_key, translated
from dispatch.adapters.redis_rides import ACTIVE_KEEP_MS
from dispatch.service_layer.ports import HeldRide


class RedisRiderRideStore:
    def __init__(self, client: AnyRedis) -> None:
        self._r = client
        self._hold = client.register_script(lua("rider_hold"))

    async def hold(self, rider_id: str, ride_id: str, now_ms: int, cap: int) -> list[HeldRide]:
        args: list[str | int] = [ride_id, now_ms, cap, ACTIVE_KEEP_MS]
        with translated():
            flat = await self._hold(keys=[rider_rides_key(rider_id)], args=args)
        return [
            HeldRide(bytes(flat[i]).decode(), int(float(flat[i + 1])))
            for i in range(0, len(flat), 2)
        ]

    async def drop(self, rider_id: str, ride_id: str) -> None:
        with translated():
            await self._r.zrem(rider_rides_key(rider_id), ride_id)
