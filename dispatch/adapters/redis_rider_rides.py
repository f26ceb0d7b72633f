"""RiderRideStore on Redis / Redis Cluster: one sorted set per rider, tagged with the
rider id, changed by lua/rider_admit.lua (count unless full, after the rider's limit
when asked: the same slot, so one script) and ZREM. A ride request with an
Idempotency-Key is admitted by its claim's script instead (redis_idempotency), with
admit_call's keys and arguments."""

from __future__ import annotations

from typing import Any

from dispatch.adapters.redis_client import UNTOUCHED_KEEP_MS, rider_rides_key
from dispatch.adapters.redis_rider_limits import ADMIT, admit_args, limit_key
from dispatch.service_layer.ports import Admission, HeldRide
from dispatch.service_layer.rider_limits import Rate
from geoindex import ScriptRunner, translated

SCRIPTS = (ADMIT,)


def admit_call(ask: Admission) -> tuple[list[str], list[str | int]]:
    """rider_admit.lua's keys and arguments for `ask`. With no rate the bucket's key is
    named (the script's keys are fixed) but not read."""
    keys = [limit_key(ask.rider_id, ask.action), rider_rides_key(ask.rider_id)]
    args = [*admit_args(ask.now_ms, ask.rate), ask.ride_id, ask.cap, UNTOUCHED_KEEP_MS]
    return keys, args


def admitted(reply: Any) -> tuple[int, list[HeldRide]]:
    """rider_admit.lua's reply as RiderRideStore.admit returns it."""
    full = [
        HeldRide(bytes(reply[i]).decode(), int(float(reply[i + 1])))
        for i in range(1, len(reply), 2)
    ]
    return int(reply[0]), full


class RedisRiderRideStore:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts
        self._r = scripts.client

    async def hold(self, rider_id: str, ride_id: str, now_ms: int, cap: int) -> list[HeldRide]:
        _, full = await self._admit(Admission(rider_id, ride_id, now_ms, cap, "", None))
        return full

    async def admit(
        self, rider_id: str, ride_id: str, now_ms: int, cap: int, action: str, rate: Rate
    ) -> tuple[int, list[HeldRide]]:
        return await self._admit(Admission(rider_id, ride_id, now_ms, cap, action, rate))

    async def _admit(self, ask: Admission) -> tuple[int, list[HeldRide]]:
        keys, args = admit_call(ask)
        return admitted(await self._scripts.call(ADMIT, keys, args))

    async def drop(self, rider_id: str, ride_id: str) -> None:
        with translated():
            await self._r.zrem(rider_rides_key(rider_id), ride_id)
