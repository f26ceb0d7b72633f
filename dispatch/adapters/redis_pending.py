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

    async def pending(self, region: int, limit: int) -> Queued:
        tag = region_tag(region)
        with translated():
            pipe = self._r.pipeline(transaction=False)
            pipe.zrange(f"{tag}:q", 0, limit - 1, withscores=True)
            pipe.hgetall(f"{tag}:held")
            raw, held = await pipe.execute()
        holds = []
        for ride_id, value in held.items():
            fence, driver_id = _s(value).split(" ", 1)
            holds.append(Hold(_s(ride_id), driver_id, int(fence)))
        return Queued([Pending(_s(m), int(score)) for m, score in raw], holds)

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
        with translated():
            pipe = self._r.pipeline(transaction=False)
            if ride_ids:
                pipe.zrem(f"{tag}:q", *ride_ids)
            if holds:
                pipe.hdel(f"{tag}:held", *holds)
            await pipe.execute()

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
