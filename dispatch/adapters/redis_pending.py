"""PendingStore on Redis / Redis Cluster.

Keys (a region's keys carry the region's hash tag, as the geo index's do, so a region's
queue and lease share its slot):
  pq:{r<region>}:q      zset: ride id -> when it (re-)entered the queue (ms)
  pq:{r<region>}:lease  string "<fence> <holder>": who solves the region's windows
  pq:{r<region>}:fence  counter of the lease's fencing tokens
  pq:regions            zset: region -> last request added (ms): where to look
The lease is taken and dropped by the market's lease scripts (the same kind of lease,
on other keys)."""

from __future__ import annotations

from collections.abc import Sequence

from dispatch.adapters.redis_market import FENCE_KEEP_MS, LEASE, LEASE_DROP
from dispatch.service_layer.match_window import Pending
from geoindex import ScriptRunner, translated

REGIONS_KEY = "pq:regions"
QUEUE_KEEP_MS = 24 * 3_600_000  # a region nobody solved for a day: its queue goes


def region_tag(region: int) -> str:
    return f"pq:{{r{region:x}}}"


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisPendingStore:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts
        self._r = scripts.client

    async def add(self, region: int, ride_id: str, now_ms: int) -> None:
        q = f"{region_tag(region)}:q"
        with translated():
            pipe = self._r.pipeline(transaction=False)
            pipe.zadd(q, {ride_id: now_ms})
            pipe.pexpire(q, QUEUE_KEEP_MS)
            pipe.zadd(REGIONS_KEY, {f"{region:x}": now_ms}, gt=True)
            await pipe.execute()

    async def pending(self, region: int, limit: int) -> list[Pending]:
        with translated():
            raw = await self._r.zrange(f"{region_tag(region)}:q", 0, limit - 1, withscores=True)
        return [Pending(_s(m), int(score)) for m, score in raw]

    async def remove(self, region: int, ride_ids: Sequence[str]) -> None:
        if ride_ids:
            with translated():
                await self._r.zrem(f"{region_tag(region)}:q", *ride_ids)

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
