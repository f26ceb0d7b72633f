"""IdempotencyStore in process memory, with the same expiry rules as the Redis one."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from dispatch.service_layer.ports import Admission, Claim, ClaimState


@dataclass(slots=True)
class _Entry:
    fingerprint: str
    token: str
    payload: bytes | None
    expires_at: int


class MemoryIdempotencyStore:
    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def _live(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at <= self._clock():
            del self._entries[key]
            return None
        return entry

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, e in self._entries.items() if e.expires_at <= now]:
            del self._entries[key]

    async def begin(
        self,
        key: str,
        fingerprint: str,
        lock_ms: int,
        ride_id: str | None = None,
        admission: Admission | None = None,
    ) -> Claim:
        # The ride is not read here (Claim.looked stays False), nor the rider admitted
        # (Claim.admitted stays None): the embedded ride and rider stores are dictionaries,
        # asked by the caller at no round trip's cost.
        entry = self._live(key)
        if entry is None:
            if len(self._entries) % 1024 == 0:
                self._sweep()
            token = uuid.uuid4().hex
            self._entries[key] = _Entry(fingerprint, token, None, self._clock() + lock_ms)
            return Claim(ClaimState.NEW, token)
        if entry.fingerprint != fingerprint:
            return Claim(ClaimState.MISMATCH)
        if entry.payload is None:
            return Claim(ClaimState.PENDING)
        return Claim(ClaimState.DONE, payload=entry.payload)

    async def finish(self, key: str, token: str, payload: bytes, ttl_ms: int) -> None:
        entry = self._live(key)
        if entry is not None and entry.token == token:
            entry.payload = payload
            entry.expires_at = self._clock() + ttl_ms

    async def abandon(self, key: str, token: str) -> None:
        entry = self._live(key)
        if entry is not None and entry.token == token and entry.payload is None:
            del self._entries[key]

    async def touch(self, key: str, token: str, lock_ms: int) -> None:
        entry = self._live(key)
        if entry is not None and entry.token == token and entry.payload is None:
            entry.expires_at = self._clock() + lock_ms

    async def forget(self, key: str, payload: bytes) -> None:
        entry = self._live(key)
        if entry is not None and entry.payload == payload:
            del self._entries[key]
