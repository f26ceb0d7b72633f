"""QueueStore on Redis / Redis Cluster: per airport a sorted set (the order) and a hash
(offers out of it), under one hash tag, changed only by lua/queue_*.lua: two instances
offering airport rides never skip, duplicate or lose a queued driver."""

from __future__ import annotations

from collections.abc import Sequence

from dispatch.adapters.redis_client import UNTOUCHED_KEEP_MS, script
from geoindex import ScriptRunner, translated

JOIN = script("queue_join")
LEAVE = script("queue_leave")
CLAIM = script("queue_claim")
SETTLE = script("queue_settle")
SCRIPTS = (JOIN, LEAVE, CLAIM, SETTLE)


def queue_keys(area_id: str) -> list[str]:
    base = f"dispatch:queue:{{q:{area_id}}}"
    return [base, base + ":held"]


def _answer(flat: list[object]) -> tuple[bool, list[str]]:
    return bool(int(flat[0])), [bytes(d).decode() for d in flat[1:]]  # type: ignore[call-overload]


class RedisQueueStore:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts
        self._r = scripts.client

    async def join(
        self, area_id: str, driver_id: str, now_ms: int, max_len: int
    ) -> tuple[bool, list[str]]:
        args: list[str | int] = [driver_id, now_ms, max_len]
        return _answer(await self._scripts.call(JOIN, queue_keys(area_id), args))

    async def leave(self, area_id: str, driver_id: str) -> tuple[bool, list[str]]:
        return _answer(await self._scripts.call(LEAVE, queue_keys(area_id), [driver_id]))

    async def claim(self, area_id: str, ride_id: str, excluded: Sequence[str]) -> str | None:
        got = await self._scripts.call(CLAIM, queue_keys(area_id), [ride_id, *excluded])
        return None if not got else bytes(got).decode()

    async def settle(
        self, area_id: str, driver_id: str, ride_id: str, how: str, now_ms: int
    ) -> tuple[bool, list[str]]:
        args: list[str | int] = [driver_id, ride_id, how, now_ms, UNTOUCHED_KEEP_MS]
        return _answer(await self._scripts.call(SETTLE, queue_keys(area_id), args))

    async def order(self, area_id: str) -> list[str]:
        with translated():
            members = await self._r.zrange(queue_keys(area_id)[0], 0, -1)
        return [bytes(m).decode() for m in members]

    async def held(self, area_id: str) -> dict[str, str]:
        with translated():
            raw = await self._r.hgetall(queue_keys(area_id)[1])
        pairs = {bytes(k).decode(): bytes(v).decode() for k, v in raw.items()}
        return {k: v for k, v in pairs.items() if not k.startswith("r:")}
