"""RideStore on Redis / Redis Cluster: one hash per ride ({v: version, j: json}), tagged
with the ride id, written only over the expected version by lua/ride_put.lua."""

from __future__ import annotations

from dispatch.adapters import ride_codec
from dispatch.adapters.redis_client import UNTOUCHED_KEEP_MS, call_id, ride_key, script
from dispatch.domain.rides import TERMINAL, Ride
from geoindex import ScriptRunner, translated

PUT = script("ride_put")
SCRIPTS = (PUT,)
FINISHED_KEEP_MS = 24 * 3600 * 1000


class RedisRideStore:
    def __init__(self, scripts: ScriptRunner, finished_keep_ms: int = FINISHED_KEEP_MS) -> None:
        self._scripts = scripts
        self._r = scripts.client
        self._finished_keep_ms = finished_keep_ms

    async def _write(self, ride: Ride, expected: int) -> bool:
        keep = self._finished_keep_ms if ride.status in TERMINAL else UNTOUCHED_KEEP_MS
        args: list[bytes | int | str] = [
            expected,
            ride.version,
            ride_codec.encode(ride),
            keep,
            call_id(),
        ]
        return bool(int(await self._scripts.call(PUT, [ride_key(ride.id)], args)))

    async def create(self, ride: Ride) -> bool:
        return await self._write(ride, 0)

    async def get(self, ride_id: str) -> Ride | None:
        with translated():
            raw = await self._r.hget(ride_key(ride_id), "j")
        return None if raw is None else ride_codec.decode(bytes(raw))

    async def replace(self, ride: Ride) -> bool:
        return await self._write(ride, ride.version - 1)
