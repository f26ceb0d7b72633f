"""DeadlineQueue on Redis: timers in sorted sets by due time, spread over a few shards
(each its own hash tag, so a cluster spreads them over masters). Every instance polls
every shard and claims due items atomically (lua/timer_claim.lua); an item whose
claimer dies becomes due again after retry_ms. So offer timeouts outlive the instance
that made the offer.

An item's shard follows from its name (CRC32 of it, modulo SHARDS), unless it was
scheduled `beside` another item: then it is in that item's shard (a new ride's lease
check beside its offer timer: one ZADD, one round trip), and is reached through the
shard its claim names (done, again), never cancelled by name. Instances from before
`beside` (rolling upgrade) claim such an item like any other, but look for it in its
name's shard when done: they miss it, it fires again after retry_ms (its handler is
idempotent), until an instance of this version claims it and removes it."""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from dispatch.adapters.redis_client import script
from dispatch.service_layer.ports import Claimed
from geoindex import ScriptRunner, translated

CLAIM = script("timer_claim")
DONE = script("timer_done")
SCRIPTS = (CLAIM, DONE)
SHARDS = 8


def _shard(index: int) -> str:
    return f"dispatch:timers:{{{index}}}"


def _shard_key(item: str) -> str:
    return _shard(zlib.crc32(item.encode()) % SHARDS)


class RedisDeadlineQueue:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts
        self._r = scripts.client

    async def schedule(self, item: str, due_ms: int) -> None:
        key = _shard_key(item)  # through the scripts' batch path: a ride sets two
        await self._scripts.command(key, "ZADD", key, due_ms, item)

    async def schedule_many(
        self, due: Mapping[str, int], beside: str | None = None, keep_earlier: bool = False
    ) -> None:
        by_shard: dict[str, list[int | str]] = {}
        for item, due_ms in due.items():
            key = _shard_key(item if beside is None else beside)
            by_shard.setdefault(key, []).extend((due_ms, item))
        # One ZADD per shard, through the batch path: one round trip per node (a ride's
        # offer and lease timers, a window's lease timers). LT (Redis 6.2): an item due
        # earlier keeps its time; a new one is added.
        flags = ("LT",) if keep_earlier else ()
        await self._scripts.commands([(k, ("ZADD", k, *flags, *a)) for k, a in by_shard.items()])

    async def cancel(self, item: str) -> None:
        with translated():
            await self._r.zrem(_shard_key(item), item)

    async def claim(self, now_ms: int, limit: int, retry_ms: int) -> list[Claimed]:
        per_shard = max(1, limit // SHARDS)
        args = [now_ms, per_shard, retry_ms]
        # Every shard in one pipeline: one round trip per node.
        shards = [_shard(s) for s in range(SHARDS)]
        replies = await self._scripts.run([(CLAIM, [key], args) for key in shards])
        return [
            Claimed(item.decode(), int(reply[0]), key)
            for key, reply in zip(shards, replies, strict=True)
            for item in reply[1]
        ]

    async def done(self, claimed: Claimed) -> None:
        key = claimed.shard or _shard_key(claimed.item)
        await self._scripts.call(DONE, [key], [claimed.item, claimed.score])

    async def again(self, claimed: Claimed, due_ms: int) -> None:
        key = claimed.shard or _shard_key(claimed.item)
        await self._scripts.command(key, "ZADD", key, due_ms, claimed.item)
