"""IdempotencyStore on Redis: one hash per key {fp, token, payload}, changed by Lua.

A record's hash tag is `r_` and the first 32 hex digits of the SHA-256 of its key: for a
ride request's record (key "<rider>\0<Idempotency-Key>") the very id of the ride it
stores (ride_requests.new_ride_id), so the record shares the ride's slot and the claim
reads the ride in the same script. Before, the tag was 40 hex digits of the same hash
(dispatch:idem:{<40 hex>}): during a rolling upgrade old and new instances do not see
each other's records. The ride id, derived from the key, still keeps a retry to at most
one ride then (a second try's store of it is refused and answers the ride stored); a key
begun on one version and retried on the other is answered from its stored ride, not the
recorded bytes. Old records expire by themselves (24 h at most)."""

from __future__ import annotations

import hashlib
import uuid

from dispatch.adapters import ride_codec
from dispatch.adapters.redis_client import ride_key, script
from dispatch.domain.rides import Ride
from dispatch.service_layer.ports import Claim, ClaimState
from geoindex import ScriptRunner

BEGIN = script("idem_begin")
FINISH = script("idem_finish")
ABANDON = script("idem_abandon")
TOUCH = script("idem_touch")
FORGET = script("idem_forget")
SCRIPTS = (BEGIN, FINISH, ABANDON, TOUCH, FORGET)


def record_key(key: str) -> str:
    # Client-chosen text never goes into a key name: hashed, it cannot smuggle a hash tag.
    return "dispatch:idem:{r_" + hashlib.sha256(key.encode()).hexdigest()[:32] + "}"


def _ride(raw: bytes | None) -> Ride | None:
    return None if raw is None else ride_codec.decode(bytes(raw))


class RedisIdempotencyStore:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts

    async def begin(
        self, key: str, fingerprint: str, lock_ms: int, ride_id: str | None = None
    ) -> Claim:
        token = uuid.uuid4().hex
        keys = [record_key(key)]
        if ride_id is not None:
            keys.append(ride_key(ride_id))
            # Only a ride in the record's slot can be read by its script.
            assert keys[0].endswith("{" + ride_id + "}"), "a ride request's record"
        res = await self._scripts.call(BEGIN, keys, [fingerprint, token, lock_ms])
        state = ClaimState(res[0].decode())
        looked = ride_id is not None
        if state is ClaimState.NEW:
            return Claim(state, token, looked=looked, ride=_ride(res[1]) if looked else None)
        if state is ClaimState.DONE:
            ride = _ride(res[2]) if looked else None
            return Claim(state, payload=bytes(res[1]), looked=looked, ride=ride)
        return Claim(state)

    async def finish(self, key: str, token: str, payload: bytes, ttl_ms: int) -> None:
        await self._scripts.call(FINISH, [record_key(key)], [token, payload, ttl_ms])

    async def abandon(self, key: str, token: str) -> None:
        await self._scripts.call(ABANDON, [record_key(key)], [token])

    async def touch(self, key: str, token: str, lock_ms: int) -> None:
        await self._scripts.call(TOUCH, [record_key(key)], [token, lock_ms])

    async def forget(self, key: str, payload: bytes) -> None:
        await self._scripts.call(FORGET, [record_key(key)], [payload])
