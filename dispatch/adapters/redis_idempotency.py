"""IdempotencyStore on Redis: one hash per key {fp, token, payload}, changed by Lua."""

from __future__ import annotations

import hashlib
import uuid

from dispatch.adapters.redis_client import AnyRedis, lua, translated
from dispatch.service_layer.ports import Claim, ClaimState


def _key(key: str) -> str:
    # Client-chosen text never goes into a key name: hashed, it cannot smuggle a hash tag.
    return "dispatch:idem:{" + hashlib.sha256(key.encode()).hexdigest()[:40] + "}"


class RedisIdempotencyStore:
    def __init__(self, client: AnyRedis) -> None:
        self._begin = client.register_script(lua("idem_begin"))
        self._finish = client.register_script(lua("idem_finish"))
        self._abandon = client.register_script(lua("idem_abandon"))
        self._touch = client.register_script(lua("idem_touch"))
        self._forget = client.register_script(lua("idem_forget"))

    async def begin(self, key: str, fingerprint: str, lock_ms: int) -> Claim:
        token = uuid.uuid4().hex
        with translated():
            res = await self._begin(keys=[_key(key)], args=[fingerprint, token, lock_ms])
        state = ClaimState(res[0].decode())
        if state is ClaimState.NEW:
            return Claim(state, token)
        if state is ClaimState.DONE:
            return Claim(state, payload=bytes(res[1]))
        return Claim(state)

    async def finish(self, key: str, token: str, payload: bytes, ttl_ms: int) -> None:
        with translated():
            await self._finish(keys=[_key(key)], args=[token, payload, ttl_ms])

    async def abandon(self, key: str, token: str) -> None:
        with translated():
            await self._abandon(keys=[_key(key)], args=[token])

    async def touch(self, key: str, token: str, lock_ms: int) -> None:
        with translated():
            await self._touch(keys=[_key(key)], args=[token, lock_ms])

    async def forget(self, key: str, payload: bytes) -> None:
        with translated():
            await self._forget(keys=[_key(key)], args=[payload])
