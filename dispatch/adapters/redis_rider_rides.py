"""RiderRideStore on Redis / Redis Cluster: one sorted set per rider, tagged with the
rider id, changed by lua/rider_admit.lua (count unless full, after the rider's limit
when asked: the same slot, so one script) and ZREM."""

from __future__ import annotations

from typing import Any

from dispatch.adapters.redis_client import UNTOUCHED_KEEP_MS, rider_rides_key
from dispatch.adapters.redis_rider_limits import ADMIT, admit_args, limit_key
from dispatch.service_layer.ports import HeldRide
from dispatch.service_layer.rider_limits import Rate
from geoindex import ScriptRunner, translated

SCRIPTS = (ADMIT,)


class RedisRiderRideStore:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts
        self._r = scripts.client

    async def hold(self, rider_id: str, ride_id: str, now_ms: int, cap: int) -> list[HeldRide]:
        _, full = await self._admit(rider_id, ride_id, now_ms, cap, "", None)
        return full

    async def admit(
        self, rider_id: str, ride_id: str, now_ms: int, cap: int, action: str, rate: Rate
    ) -> tuple[int, list[HeldRide]]:
        return await self._admit(rider_id, ride_id, now_ms, cap, action, rate)

    async def _admit(
        self, rider_id: str, ride_id: str, now_ms: int, cap: int, action: str, rate: Rate | None
    ) -> tuple[int, list[HeldRide]]:
        # With no rate the bucket's key is named (the script's keys are fixed) but not read.
        keys = [limit_key(rider_id, action), rider_rides_key(rider_id)]
        args = [*admit_args(now_ms, rate), ride_id, cap, UNTOUCHED_KEEP_MS]
        reply: Any = await self._scripts.call(ADMIT, keys, args)
        full = [
            HeldRide(bytes(reply[i]).decode(), int(float(reply[i + 1])))
            for i in range(1, len(reply), 2)
        ]
        return int(reply[0]), full

    async def drop(self, rider_id: str, ride_id: str) -> None:
        with translated():
            await self._r.zrem(rider_rides_key(rider_id), ride_id)
