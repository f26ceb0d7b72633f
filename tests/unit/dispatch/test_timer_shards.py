"""Where the Redis timer queue keeps a new ride's timers: in a shard on the master holding
the driver's keys when there is one (so they go in the reservation's own write), else
beside the offer's timer as before; and a cancel given the driver looks there too."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.crc import key_slot

from dispatch.adapters.redis_client import driver_key
from dispatch.adapters.redis_deadlines import ALL_SHARDS, RedisDeadlineQueue, _shard_key

SLOTS = 16384


@dataclass(frozen=True)
class Node:
    name: str


class Scripts:
    """The few ScriptRunner members the queue uses: masters holding even slot ranges, and
    every batch of plain commands recorded."""

    def __init__(self, masters: int, cluster: bool = True) -> None:
        self.cluster = cluster
        self.masters = masters
        self.map_known = True
        self.sent: list[list[tuple[Any, ...]]] = []

    def node(self, key: str) -> Node | None:
        if not self.map_known:
            return None
        if not self.cluster:
            return Node("one")
        return Node(f"m{key_slot(key.encode()) * self.masters // SLOTS}")

    async def commands(self, commands: Sequence[tuple[Any, tuple[Any, ...]]]) -> list[Any]:
        self.sent.append([c for _, c in commands])
        return [1] * len(commands)


def _queue(scripts: Scripts) -> RedisDeadlineQueue:
    return RedisDeadlineQueue(scripts)  # type: ignore[arg-type]


DRIVERS = [f"d{i}" for i in range(200)]


async def test_with_a_shard_on_every_master_a_rides_timers_share_its_drivers_node() -> None:
    scripts = Scripts(masters=3)
    q = _queue(scripts)
    for d in DRIVERS:
        scripts.sent.clear()
        await q.schedule_many({"r:x": 1, f"l:{d}": 2}, "r:x", keep_earlier=True, near=d)
        [[(cmd, key, flag, *_)]] = scripts.sent  # one ZADD, LT kept
        assert (cmd, flag) == ("ZADD", "LT")
        assert scripts.node(key) == scripts.node(driver_key(d))
        assert q.near_shard(d) == key  # the same shard each time: a cancel finds it
    # every shard on a master is used, not only the first
    assert {q.near_shard(d) for d in DRIVERS} == set(ALL_SHARDS)


async def test_a_cancel_given_the_driver_looks_near_it_and_where_the_name_puts_it() -> None:
    scripts = Scripts(masters=3)
    q = _queue(scripts)
    d = next(d for d in DRIVERS if q.near_shard(d) != _shard_key("r:x"))
    await q.cancel("r:x", d)
    [removed] = scripts.sent
    assert removed == [("ZREM", _shard_key("r:x"), "r:x"), ("ZREM", q.near_shard(d), "r:x")]
    scripts.sent.clear()
    await q.cancel("r:x", d, by_name=False)  # the item set again by its name stays
    assert scripts.sent == [[("ZREM", q.near_shard(d), "r:x")]]
    scripts.sent.clear()
    same = next(d for d in DRIVERS if q.near_shard(d) == _shard_key("r:x"))
    await q.cancel("r:x", same)
    await q.cancel("r:x", same, by_name=False)  # nothing kept apart from the name's place
    assert scripts.sent == [[("ZREM", _shard_key("r:x"), "r:x")], []]


async def test_a_driver_on_a_master_without_a_shard_keeps_the_timers_beside_the_offer() -> None:
    scripts = Scripts(masters=6)  # the shards' slots fall in four places: two masters lack one
    q = _queue(scripts)
    lacking = [d for d in DRIVERS if q.near_shard(d) is None]
    assert lacking and len(lacking) < len(DRIVERS)
    for d in lacking:
        scripts.sent.clear()
        await q.schedule_many({"r:x": 1, f"l:{d}": 2}, "r:x", near=d)
        assert scripts.sent == [[("ZADD", _shard_key("r:x"), 1, "r:x", 2, f"l:{d}")]]
        scripts.sent.clear()
        await q.cancel("r:x", d)
        assert scripts.sent == [[("ZREM", _shard_key("r:x"), "r:x")]]


async def test_on_a_single_redis_or_with_the_slot_map_unknown_nothing_changes() -> None:
    for scripts in (Scripts(1, cluster=False), Scripts(3)):
        scripts.map_known = not scripts.cluster  # a cluster's map being read again
        q = _queue(scripts)
        await q.schedule_many({"r:x": 1, "l:d1": 2}, "r:x", near="d1")
        await q.schedule_many({"l:d1": 2}, near="d1")
        await q.cancel("r:x", "d1")
        assert scripts.sent == [
            [("ZADD", _shard_key("r:x"), 1, "r:x", 2, "l:d1")],
            [("ZADD", _shard_key("l:d1"), 2, "l:d1")],
            [("ZREM", _shard_key("r:x"), "r:x")],
        ]
