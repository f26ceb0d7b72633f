"""DeadlineQueue on Redis: timers in sorted sets by due time, spread over a few shards
(each its own hash tag, so a cluster spreads them over masters). Every instance polls
every shard and claims due items atomically (lua/timer_claim.lua); an item whose
claimer dies becomes due again after retry_ms. So offer timeouts outlive the instance
that made the offer."""

from __future__ import annotations

import asyncio
import zlib

from dispatch.adapters.redis_client import AnyRedis, lua, translated
from dispatch.service_layer.ports import Claimed

SHARDS = 8


def _shard_key(item: str) -> str:
    return f"dispatch:timers:{{{zlib.crc32(item.encode()) % SHARDS}}}"


class RedisDeadlineQueue:
    def __init__(self, client: AnyRedis) -> None:
        self._r = client
        self._claim = client.register_script(lua("timer_claim"))
        self._done = client.register_script(lua("timer_done"))

    async def schedule(self, item: str, due_ms: int) -> None:
        with translated():
            await self._r.zadd(_shard_key(item), {item: due_ms})

    async def cancel(self, item: str) -> None:
        with translated():
            await self._r.zrem(_shard_key(item), item)

    async def _claim_shard(
        self, shard: int, now_ms: int, limit: int, retry_ms: int
    ) -> list[Claimed]:
        key = f"dispatch:timers:{{{shard}}}"
        res = await self._claim(keys=[key], args=[now_ms, limit, retry_ms])
        score = int(res[0])
        return [Claimed(item.decode(), score) for item in res[1]]

    async def claim(self, now_ms: int, limit: int, retry_ms: int) -> list[Claimed]:
        per_shard = max(1, limit // SHARDS)
        with translated():
            batches = await asyncio.gather(
                *(self._claim_shard(s, now_ms, per_shard, retry_ms) for s in range(SHARDS))
            )
        return [c for batch in batches for c in batch]

    async def done(self, claimed: Claimed) -> None:
        with translated():
            await self._done(keys=[_shard_key(claimed.item)], args=[claimed.item, claimed.score])
