"""DeadlineQueue on Redis: timers in sorted sets by due time, spread over a few shards
(each its own hash tag, so a cluster spreads them over masters). Every instance polls
every shard and claims due items atomically (lua/timer_claim.lua); an item whose
claimer dies becomes due again after retry_ms. So offer timeouts outlive the instance
that made the offer.

Where an item is kept:
- by its name (CRC32 of it, modulo SHARDS): `schedule`, and `schedule_many` without
  `near` or `beside`;
- `near` a driver, on a cluster: in a shard whose slot the master holding the driver's
  keys serves (of those, the one a CRC32 of the driver id picks), so a new ride's timers
  (its offer timer, the driver's lease check) go in the very write of the driver's
  reservation (one node call, not two where the shards' master is another). That needs
  a shard on the driver's master: the SHARDS tags' slots fall in four places (about
  1.6k, 5.7k, 9.9k and 14k), so with the slots split evenly over up to four masters
  every master holds some; with more, drivers of a master holding none fall back to:
- `beside` another item: in that item's shard (the placement before `near`, and a
  single Redis's only one: there every shard is on the one node already).
An item kept near a driver or beside another is reached through the shard its claim
names (done, again). Cancelled, it is looked for in its name's shard and near the
driver given (`cancel(item, near)`): the shard is chosen again from the cluster's slot
map then, so a slot moved in between (a reshard; a failover moves none) leaves it
where it was: it fires once more, into a handler that finds nothing to do (every
handler is idempotent; an offer timeout for a ride no longer offered does nothing).

An offer passed to the next driver is timed again by its name; its copy near the first
driver is removed after that (`cancel(..., by_name=False)`, effects.settle).

Rolling upgrade, both ways: instances from before `near` claim, finish and put off
items near a driver like any other (through the claim's shard), and cancel an offer
timer by its name only: one a newer instance kept near its driver is missed and fires
once more, into nothing (passed to the next driver by such an instance, the copy waits
for that offer's time, then the ride's compare-and-set lets one copy pass it on). A
newer instance's cancel looks in the name's shard too, so it finds what an older one
scheduled by name or beside the offer's name. Instances from before `beside` look for
such items in their name's shard when done: they miss them, which fire again after
retry_ms until an instance of a later version removes them."""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Mapping

from dispatch.adapters.redis_client import driver_key, script
from dispatch.service_layer.ports import Claimed
from geoindex import ScriptRunner

CLAIM = script("timer_claim")
DONE = script("timer_done")
SCRIPTS = (CLAIM, DONE)
SHARDS = 8
PLACES_KEPT_S = 1.0  # how long the shards' nodes, as last read, are taken as they are


def _shard(index: int) -> str:
    return f"dispatch:timers:{{{index}}}"


ALL_SHARDS = tuple(_shard(s) for s in range(SHARDS))


def _shard_key(item: str) -> str:
    return ALL_SHARDS[zlib.crc32(item.encode()) % SHARDS]


class RedisDeadlineQueue:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts
        self._places: dict[str, list[str]] = {}  # node name -> the shards it holds
        self._placed_at = -math.inf

    def near_shard(self, driver_id: str) -> str | None:
        """The shard kept near the driver: one on the master holding the driver's keys, as
        the client's slot map has it (the shards' places read again at most a second
        old); None on a single Redis, with no such shard, or while the map is being read
        again."""
        if not self._scripts.cluster:
            return None
        here = self._shards_on(_name(self._scripts.node(driver_key(driver_id))))
        return here[zlib.crc32(driver_id.encode()) % len(here)] if here else None

    def _shards_on(self, node: str | None) -> list[str] | None:
        now = time.monotonic()
        if now - self._placed_at > PLACES_KEPT_S:  # eight slot look-ups: not every ride
            places: dict[str, list[str]] = {}
            for shard in ALL_SHARDS:
                name = _name(self._scripts.node(shard))
                if name is None:  # the slot map is being read again
                    return None
                places.setdefault(name, []).append(shard)
            self._places, self._placed_at = places, now
        return None if node is None else self._places.get(node)

    async def schedule(self, item: str, due_ms: int) -> None:
        key = _shard_key(item)  # through the scripts' batch path: a ride sets two
        await self._scripts.command(key, "ZADD", key, due_ms, item)

    async def schedule_many(
        self,
        due: Mapping[str, int],
        beside: str | None = None,
        keep_earlier: bool = False,
        near: str | None = None,
    ) -> None:
        kept = None if near is None else self.near_shard(near)
        if kept is None and beside is not None:
            kept = _shard_key(beside)
        by_shard: dict[str, list[int | str]] = {}
        for item, due_ms in due.items():
            by_shard.setdefault(kept or _shard_key(item), []).extend((due_ms, item))
        # One ZADD per shard, through the batch path: one round trip per node (a ride's
        # offer and lease timers, a window's lease timers). LT (Redis 6.2): an item due
        # earlier keeps its time; a new one is added.
        flags = ("LT",) if keep_earlier else ()
        await self._scripts.commands([(k, ("ZADD", k, *flags, *a)) for k, a in by_shard.items()])

    async def cancel(self, item: str, near: str | None = None, by_name: bool = True) -> None:
        named = _shard_key(item)
        kept = None if near is None else self.near_shard(near)
        keys = [named] if by_name else []
        if kept is not None and kept != named:
            keys.append(kept)
        # Through the batch path: one ZREM per shard, one round trip per node.
        await self._scripts.commands([(k, ("ZREM", k, item)) for k in keys])

    async def claim(self, now_ms: int, limit: int, retry_ms: int) -> list[Claimed]:
        per_shard = max(1, limit // SHARDS)
        args = [now_ms, per_shard, retry_ms]
        # Every shard in one pipeline: one round trip per node.
        replies = await self._scripts.run([(CLAIM, [key], args) for key in ALL_SHARDS])
        return [
            Claimed(item.decode(), int(reply[0]), key)
            for key, reply in zip(ALL_SHARDS, replies, strict=True)
            for item in reply[1]
        ]

    async def done(self, claimed: Claimed) -> None:
        key = claimed.shard or _shard_key(claimed.item)
        await self._scripts.call(DONE, [key], [claimed.item, claimed.score])

    async def again(self, claimed: Claimed, due_ms: int) -> None:
        key = claimed.shard or _shard_key(claimed.item)
        await self._scripts.command(key, "ZADD", key, due_ms, claimed.item)


def _name(node: object) -> str | None:
    return getattr(node, "name", None)
