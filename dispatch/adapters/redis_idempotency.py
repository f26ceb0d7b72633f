"""IdempotencyStore on Redis: one hash per key {fp, token, payload}, changed by Lua."""

from __future__ import annotations

import hashlib
import uuid

from dispatch.adapters.redis_client import script
from dispatch.service_layer.ports import Claim, ClaimState
from geoindex import ScriptRunner

BEGIN = script("idem_begin")
FINISH = script("idem_finish")
ABANDON = script("idem_abandon")
TOUCH = script("idem_touch")
FORGET = script("idem_forget")
SCRIPTS = (BEGIN, FINISH, ABANDON, TOUCH, FORGET)


def _key(key: str) -> str:
    # Client-chosen text never goes into a key name: hashed, it cannot smuggle a hash tag.
    return "dispatch:idem:{" + hashlib.sha256(key.encode()).hexdigest()[:40] + "}"


class RedisIdempotencyStore:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts

    async def begin(self, key: str, fingerprint: str, lock_ms: int) -> Claim:
        token = uuid.uuid4().hex
        res = await self._scripts.call(BEGIN, [_key(key)], [fingerprint, token, lock_ms])
        state = ClaimState(res[0].decode())
        if state is ClaimState.NEW:
            return Claim(state, token)
        if state is ClaimState.DONE:
            return Claim(state, payload=bytes(res[1]))
        return Claim(state)

    async def finish(self, key: str, token: str, payload: bytes, ttl_ms: int) -> None:
        await self._scripts.call(FINISH, [_key(key)], [token, payload, ttl_ms])

    async def abandon(self, key: str, token: str) -> None:
        await self._scripts.call(ABANDON, [_key(key)], [token])

    async def touch(self, key: str, token: str, lock_ms: int) -> None:
        await self._scripts.call(TOUCH, [_key(key)], [token, lock_ms])

    async def forget(self, key: str, payload: bytes) -> None:
        await self._scripts.call(FORGET, [_key(key)], [payload])
