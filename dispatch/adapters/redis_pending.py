"""PendingStore on Redis / Redis Cluster.

Keys (a region's keys carry the region's hash tag, as the geo index's do, so a region's
queue and lease share its slot):
  pq:{r<region>}:q      zset: ride id -> when it (re-)entered the queue (ms)
  pq:{r<region>}:lease  string "<fence> <holder>": who solves the region's windows
  pq:{r<region>}:fence  counter of the lease's fencing tokens
  pq:{r<region>}:held   hash: ride id -> "<fence> <driver id>": a window's holds
  pq:regions            zset: region -> last request added (ms): where to look
The lease is taken and dropped by the market's lease scripts (the same kind of lease,
on other keys); holds are noted by lua/pending_hold.lua under the lease."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dispatch.adapters.redis_client import script
from dispatch.adapters.redis_market import FENCE_KEEP_MS, LEASE, LEASE_DROP
from dispatch.service_layer.match_window import Hold, Pending, Queued
from geoindex import ScriptRunner, translated

HOLD = script("pending_hold")

REGIONS_KEY = "pq:regions"
QUEUE_KEEP_MS = 24 * 3_600_000  # a region nobody solved for a day: its queue goes


def region_tag(region: int) -> str:
    return f"pq:{{r{region:x}}}"


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(reply: Any) -> list[tuple[Any, Any]]:
    """A raw reply of pairs (ZRANGE WITHSCORES, HGETALL): flat under RESP2, a map or a
    list of pairs under RESP3."""
    if isinstance(reply, dict):
        return list(reply.items())
    if reply and isinstance(reply[0], list | tuple):
        return [(a, b) for a, b in reply]
    return list(zip(reply[::2], reply[1::2], strict=True))


class RedisPendingStore:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts
        self._r = scripts.client

    async def add(self, region: int, ride_id: str, now_ms: int) -> None:
        # Through the edge's batch path (one round trip per node, without redis-py's
        # per-command work): every ride request of batched mode makes this call.
        q = f"{region_tag(region)}:q"
        await self._scripts.commands(
            [
                (q, ("ZADD", q, now_ms, ride_id)),
                (q, ("PEXPIRE", q, QUEUE_KEEP_MS)),
                (REGIONS_KEY, ("ZADD", REGIONS_KEY, "GT", now_ms, f"{region:x}")),
            ]
        )

    async def pending(self, region: int, limit: int) -> Queued:
        tag = region_tag(region)
        q, held_key = f"{tag}:q", f"{tag}:held"
        raw, held = await self._scripts.commands(
            [
                (q, ("ZRANGE", q, 0, limit - 1, "WITHSCORES")),
                (held_key, ("HGETALL", held_key)),
            ]
        )
        holds = []
        for ride_id, value in _pairs(held):
            fence, driver_id = _s(value).split(" ", 1)
            holds.append(Hold(_s(ride_id), driver_id, int(fence)))
        return Queued([Pending(_s(m), int(float(score))) for m, score in _pairs(raw)], holds)

    async def hold(
        self, region: int, holder: str, fence: int, ttl_ms: int, chosen: Mapping[str, str]
    ) -> bool:
        tag = region_tag(region)
        args: list[str | int] = [holder, fence, ttl_ms, QUEUE_KEEP_MS]
        for ride_id, driver_id in chosen.items():
            args += [ride_id, driver_id]
        return bool(int(await self._scripts.call(HOLD, [f"{tag}:lease", f"{tag}:held"], args)))

    async def remove(self, region: int, ride_ids: Sequence[str], holds: Sequence[str] = ()) -> None:
        if not ride_ids and not holds:
            return
        tag = region_tag(region)
        q, held_key = f"{tag}:q", f"{tag}:held"
        commands: list[tuple[str, tuple[str, ...]]] = []
        if ride_ids:
            commands.append((q, ("ZREM", q, *ride_ids)))
        if holds:
            commands.append((held_key, ("HDEL", held_key, *holds)))
        await self._scripts.commands(commands)

    async def regions(self, since_ms: int) -> list[int]:
        with translated():
            pipe = self._r.pipeline(transaction=False)
            pipe.zremrangebyscore(REGIONS_KEY, "-inf", since_ms - QUEUE_KEEP_MS)  # long idle
            pipe.zrangebyscore(REGIONS_KEY, since_ms, "+inf")
            replies = await pipe.execute()
        return sorted(int(_s(r), 16) for r in replies[-1])

    async def take_lease(
        self, region: int, holder: str, ttl_ms: int, resume: int = 0
    ) -> int | None:
        tag = region_tag(region)
        keys = [f"{tag}:lease", f"{tag}:fence"]
        fence = int(await self._scripts.call(LEASE, keys, [holder, ttl_ms, FENCE_KEEP_MS, resume]))
        return fence or None

    async def drop_lease(self, region: int, holder: str, fence: int) -> None:
        await self._scripts.call(LEASE_DROP, [f"{region_tag(region)}:lease"], [holder, fence])
