"""IdempotencyStore on Redis: one hash per key {fp, token, payload}, changed by Lua.

A record is named by the caller (a ride request's by the id of the ride it stores,
ride_requests.record_key): `dispatch:idem:{<name>}`, so the record shares the ride's
slot and the claim reads the ride in the same script. Ride ids are minted in their
rider's slot, so the claim can also admit the ride (the rider's rate and active-ride
count, redis_rider_rides) in that script: lua/idem_begin_admit.lua. Where the rider's
keys are in another slot (ids minted as before, DISPATCH_RIDE_IDS=plain) on a cluster,
the claim does not admit and the caller admits by itself. docs/api.md ("Several
instances on one Redis") has the layouts before this one and the rolling upgrade."""

from __future__ import annotations

import uuid
from typing import Any

from redis.crc import key_slot

from dispatch.adapters import ride_codec
from dispatch.adapters.redis_client import ride_key, script
from dispatch.adapters.redis_rider_limits import ADMIT
from dispatch.adapters.redis_rider_rides import admit_call, admitted
from dispatch.domain.rides import Ride
from dispatch.service_layer.ports import Admission, Claim, ClaimState
from geoindex import Script, ScriptRunner

BEGIN = script("idem_begin")
FINISH = script("idem_finish")
ABANDON = script("idem_abandon")
TOUCH = script("idem_touch")
FORGET = script("idem_forget")


def _claim_and_admit() -> Script:
    """idem_begin_admit.lua with idem_begin.lua and rider_admit.lua in front of it as the
    Lua functions claim(KEYS, ARGV) and admit(KEYS, ARGV)."""
    glue = script("idem_begin_admit")
    source = (
        f"local function claim(KEYS, ARGV)\n{BEGIN.source}\nend\n"
        f"local function admit(KEYS, ARGV)\n{ADMIT.source}\nend\n{glue.source}"
    )
    return Script.from_source(glue.name, source)


BEGIN_ADMIT = _claim_and_admit()
SCRIPTS = (BEGIN, BEGIN_ADMIT, FINISH, ABANDON, TOUCH, FORGET)


def record_key(name: str) -> str:
    # A name is minted by the service (a ride id), never client text; still, a brace in
    # it would move the record to another slot.
    if "{" in name or "}" in name:
        raise ValueError(f"an idempotency record's name holds a brace: {name!r}")
    return "dispatch:idem:{" + name + "}"


def _ride(raw: bytes | None) -> Ride | None:
    return None if raw is None else ride_codec.decode(bytes(raw))


class RedisIdempotencyStore:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts

    async def begin(
        self,
        key: str,
        fingerprint: str,
        lock_ms: int,
        ride_id: str | None = None,
        admission: Admission | None = None,
    ) -> Claim:
        token = uuid.uuid4().hex
        keys, args = [record_key(key)], [fingerprint, token, lock_ms]
        call = BEGIN
        if ride_id is not None:
            keys.append(ride_key(ride_id))
            # Only a ride in the record's slot can be read by its script.
            assert keys[0].endswith("{" + ride_id + "}"), "a ride request's record"
            if admission is not None and self._beside(keys[0], admission):
                admit_keys, admit_args = admit_call(admission)
                keys += admit_keys
                args += admit_args
                call = BEGIN_ADMIT
        res: Any = await self._scripts.call(call, keys, args)
        looked = ride_id is not None
        if res[0] == b"admitted":  # a NEW claim, no ride stored: the admission made
            return Claim(ClaimState.NEW, token, looked=True, admitted=admitted(res[1:]))
        state = ClaimState(res[0].decode())
        if state is ClaimState.NEW:
            return Claim(state, token, looked=looked, ride=_ride(res[1]) if looked else None)
        if state is ClaimState.DONE:
            ride = _ride(res[2]) if looked else None
            return Claim(state, payload=bytes(res[1]), looked=looked, ride=ride)
        return Claim(state)

    def _beside(self, record: str, admission: Admission) -> bool:
        """Whether one script may hold the record and the rider's keys: always on a single
        Redis, on a cluster where the ride id was minted in the rider's slot."""
        if not self._scripts.cluster:
            return True
        rider_keys, _ = admit_call(admission)
        return all(key_slot(k.encode()) == key_slot(record.encode()) for k in rider_keys)

    async def finish(self, key: str, token: str, payload: bytes, ttl_ms: int) -> None:
        await self._scripts.call(FINISH, [record_key(key)], [token, payload, ttl_ms])

    async def abandon(self, key: str, token: str) -> None:
        await self._scripts.call(ABANDON, [record_key(key)], [token])

    async def touch(self, key: str, token: str, lock_ms: int) -> None:
        await self._scripts.call(TOUCH, [record_key(key)], [token, lock_ms])

    async def forget(self, key: str, payload: bytes) -> None:
        await self._scripts.call(FORGET, [record_key(key)], [payload])
