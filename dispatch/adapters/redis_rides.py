"""RideStore on Redis / Redis Cluster: one hash per ride ({v: version, j: json}), tagged
with the ride id, written only over the expected version by lua/ride_put.lua."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from dispatch.adapters import ride_codec
from dispatch.adapters.durable import DurableScripts, ScriptCalls
from dispatch.adapters.redis_client import UNTOUCHED_KEEP_MS, call_id, ride_key, script
from dispatch.adapters.redis_idempotency import record_key
from dispatch.domain.retention import kept_for
from dispatch.domain.rides import TERMINAL, Ride, RideStatus
from dispatch.service_layer.ports import Answer
from geoindex import ScriptRunner, translated
from geoindex.redis_edge import Call

PUT = script("ride_put")
SCRIPTS = (PUT,)
FINISHED_KEEP_MS = 24 * 3600 * 1000


class RedisRideStore:
    def __init__(
        self,
        scripts: ScriptRunner,
        finished_keep_ms: int = FINISHED_KEEP_MS,
        durable: DurableScripts | None = None,
    ) -> None:
        self._scripts = scripts
        self._r = scripts.client
        self._finished_keep_ms = finished_keep_ms
        self._durable = durable  # DISPATCH_DURABLE_WRITES: see _critical

    async def _write(self, ride: Ride, expected: int, answer: Answer | None = None) -> bool:
        runner: ScriptCalls = self._scripts
        if self._durable is not None and _critical(ride, expected):
            runner = self._durable
        keys, args = [ride_key(ride.id)], self._put_args(ride, expected)
        if answer is not None:  # the record is in the ride's slot (redis_idempotency)
            keys.append(record_key(answer.key))
            assert keys[1].endswith("{" + ride.id + "}"), "a ride request's record"
            args += [answer.token, answer.payload, answer.ttl_ms]
        return bool(int(await runner.call(PUT, keys, args)))

    def _put_args(self, ride: Ride, expected: int) -> list[bytes | int | str]:
        keep = self._finished_keep_ms if ride.status in TERMINAL else UNTOUCHED_KEEP_MS
        keep = kept_for(ride, keep)  # a no_driver ride: an hour (dispatch.domain.retention)
        return [expected, ride.version, ride_codec.encode(ride), keep, call_id()]

    async def create(self, ride: Ride, answer: Answer | None = None) -> bool:
        return await self._write(ride, 0, answer)

    async def get(self, ride_id: str) -> Ride | None:
        with translated():
            raw = await self._r.hget(ride_key(ride_id), "j")
        return None if raw is None else ride_codec.decode(bytes(raw))

    async def get_many(self, ride_ids: Sequence[str]) -> list[Ride | None]:
        if not ride_ids:
            return []
        pipe = self._r.pipeline(transaction=False)
        for ride_id in ride_ids:
            pipe.hget(ride_key(ride_id), "j")
        with translated():
            raws = await pipe.execute()
        return [None if raw is None else ride_codec.decode(bytes(raw)) for raw in raws]

    async def replace(self, ride: Ride) -> bool:
        return await self._write(ride, ride.version - 1)

    async def replace_many(self, rides: Sequence[Ride]) -> list[bool]:
        if any(self._durable is not None and _critical(r, r.version - 1) for r in rides):
            return list(await asyncio.gather(*(self.replace(r) for r in rides)))
        calls: list[Call] = [
            (PUT, [ride_key(r.id)], self._put_args(r, r.version - 1)) for r in rides
        ]
        return [bool(int(reply)) for reply in await self._scripts.run(calls)]

    async def kept(self, ride_id: str) -> None:
        if self._durable is not None:
            await self._durable.barrier(ride_key(ride_id))


def _critical(ride: Ride, expected: int) -> bool:
    """The ride writes a client's acknowledgement must not outlive: its creation, its
    accept and its end. Offers, arrivals and starts are repaired or repeated."""
    return expected == 0 or ride.status is RideStatus.ACCEPTED or ride.status in TERMINAL
