"""The area stores hold the same contract on every backend (memory, Redis, Redis Cluster):
presence with the dwell rule, the airport queues' Lua (no driver skipped, duplicated or
lost under concurrent claims), and the bounded event log."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from redis.asyncio.connection import AbstractConnection

from dispatch.domain.areas import Crossing
from dispatch.service_layer.geofence import PresenceStore, Step

from .conftest import Backend

MINUTE = 60_000


async def step(p: PresenceStore, driver_id: str, holding: Mapping[str, int], now_ms: int) -> Step:
    return (await p.step_many([(driver_id, holding)], now_ms))[0]


async def test_presence_enters_at_once_and_exits_after_the_dwell(backend: Backend) -> None:
    p = backend.deps.fences.presence
    t = 1_800_000_000_000
    assert await step(p, "d1", {"a": MINUTE, "b": 0}, t) == (
        [(Crossing.ENTER, "a"), (Crossing.ENTER, "b")],
        frozenset({"a", "b"}),
        None,
    )
    assert await step(p, "d1", {"a": MINUTE, "b": 0}, t + 1) == ([], frozenset({"a", "b"}), None)
    # out of both: b (no dwell) exits at once, a is still counted in until its dwell ends
    assert await step(p, "d1", {}, t + 2) == (
        [(Crossing.EXIT, "b")],
        frozenset({"a"}),
        t + 2 + MINUTE,
    )
    assert await step(p, "d1", {"a": MINUTE}, t + 30_000) == ([], frozenset({"a"}), None)
    out = t + 40_000
    assert await step(p, "d1", {}, out) == ([], frozenset({"a"}), out + MINUTE)
    assert await step(p, "d1", {}, out + MINUTE - 1) == ([], frozenset({"a"}), out + MINUTE)
    assert await step(p, "d1", {}, out + MINUTE) == ([(Crossing.EXIT, "a")], frozenset(), None)
    assert await p.areas_of("d1") == frozenset()


async def test_a_batch_of_steps_answers_each_driver_as_steps_one_by_one(backend: Backend) -> None:
    p = backend.deps.fences.presence
    t = 1_800_000_000_000
    await step(p, "d2", {"a": MINUTE, "b": 0}, t)
    await step(p, "d3", {"a": 0}, t)
    steps: list[tuple[str, Mapping[str, int]]] = [
        ("d1", {"a": MINUTE}),  # new: enters
        ("d2", {}),  # out of both: b exits, a within its dwell
        ("d3", {"b": 0}),  # from a to b
        ("d4", {}),  # in nothing, before or after
    ]
    assert await p.step_many(steps, t + 1) == [
        ([(Crossing.ENTER, "a")], frozenset({"a"}), None),
        ([(Crossing.EXIT, "b")], frozenset({"a"}), t + 1 + MINUTE),
        ([(Crossing.ENTER, "b"), (Crossing.EXIT, "a")], frozenset({"b"}), None),
        ([], frozenset(), None),
    ]
    assert await p.step_many([], t + 2) == []
    assert [await p.areas_of(d) for d in ("d1", "d2", "d3", "d4")] == [
        frozenset({"a"}),
        frozenset({"a"}),
        frozenset({"b"}),
        frozenset(),
    ]


async def test_clearing_a_silent_driver_tells_its_areas_once(backend: Backend) -> None:
    p = backend.deps.fences.presence
    t = 1_800_000_000_000
    await step(p, "d1", {"a": MINUTE, "b": 0}, t)
    await step(p, "d2", {"a": MINUTE}, t)
    await step(p, "d2", {}, t + 1)  # out of a, still counted in within its dwell
    assert await p.clear(["d1", "d2", "d3"]) == {
        "d1": frozenset({"a", "b"}),
        "d2": frozenset({"a"}),
    }
    assert await p.clear(["d1", "d2"]) == {}  # a second sweep has nothing to tell
    assert await p.areas_of("d1") == frozenset()


async def test_queue_order_claims_and_settling(backend: Backend) -> None:
    q = backend.deps.fences.queues
    for i, d in enumerate(["d1", "d2", "d3"]):
        assert (await q.join("ber", d, 1000 + i, 10))[0]
    assert await q.join("ber", "d1", 5000, 10) == (False, ["d1", "d2", "d3"])
    assert await q.claim("ber", "r1", []) == "d1"
    assert await q.claim("ber", "r2", ["d2"]) == "d3"  # d2 declined r2 before
    assert await q.held("ber") == {"d1": "r1", "d3": "r2"}
    assert await q.settle("ber", "d1", "r9", "back", 9000) == (False, ["d1", "d2", "d3"])
    assert await q.settle("ber", "d1", "r1", "back", 9000) == (True, ["d2", "d3", "d1"])
    assert await q.settle("ber", "d3", "r2", "served", 9000) == (True, ["d2", "d1"])
    assert await q.settle("ber", "d3", "r2", "restore", 9500) == (True, ["d3", "d2", "d1"])
    assert await q.settle("ber", "d3", "r2", "restore", 9600) == (False, ["d3", "d2", "d1"])
    assert await q.claim("ber", "r3", []) == "d3"
    assert await q.settle("ber", "d3", "r3", "keep", 9700) == (False, ["d3", "d2", "d1"])
    assert await q.held("ber") == {}
    assert await q.leave("ber", "d2") == (True, ["d3", "d1"])
    assert await q.join("ber", "d4", 1, 2) == (False, ["d3", "d1"])  # full at 2


async def test_concurrent_claims_never_share_or_skip_a_driver(backend: Backend) -> None:
    q = backend.deps.fences.queues
    drivers = [f"d{i:02d}" for i in range(50)]
    for i, d in enumerate(drivers):
        await q.join("ber", d, 1000 + i, 100)
    got = await asyncio.gather(*(q.claim("ber", f"r{i}", []) for i in range(200)))
    claimed = [d for d in got if d is not None]
    assert sorted(claimed) == drivers  # each exactly once, none lost
    assert await q.order("ber") == drivers  # places kept while offered


async def test_the_event_log_is_read_in_order_and_bounded(backend: Backend) -> None:
    log = backend.deps.fences.log
    start = await log.tail()
    await log.append([orjson.dumps({"n": i}) for i in range(3)])
    after, events = await log.read(start, 100)
    assert [orjson.loads(e)["n"] for e in events] == [0, 1, 2]
    assert (await log.read(after, 10))[1] == []
    assert [orjson.loads(e)["n"] for e in await log.recent(2)] == [1, 2]
    # A fleet batch's crossings: many events in one append, every one, in order.
    await log.append([orjson.dumps({"n": i}) for i in range(3, 503)])
    await log.append([])
    after, events = await log.read(after, 100)
    assert [orjson.loads(e)["n"] for e in events] == list(range(3, 503))
    assert [orjson.loads(e)["n"] for e in await log.recent(3)] == [500, 501, 502]


async def test_a_poll_of_the_event_log_is_its_own_read_only(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll sends its XREAD, routed by the stream's key, and nothing else: redis-py's
    cluster client would first ask `COMMAND GETKEYS` (XREAD's keys move with its
    arguments), a round trip every poll."""
    if backend.name == "memory":
        pytest.skip("no Redis")
    log = backend.deps.fences.log
    await log.append([orjson.dumps({"n": 0})])  # connections open, the slot map read
    start = await log.tail()
    sent: list[bytes] = []
    original = AbstractConnection.send_packed_command

    async def recorded(conn: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        await original(conn, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", recorded)
    await log.append([orjson.dumps({"n": 1})])
    after, events = await log.read(start, 100)
    assert [orjson.loads(e)["n"] for e in events] == [1]
    assert (await log.read(after, 10))[1] == []
    # Through the batch path: neither the XREAD nor a COMMAND went through redis-py (the
    # instance's own background work, such as its channel's SSUBSCRIBE, may have).
    names = [c.split(b"\r\n")[2].upper() for c in sent]
    assert b"XREAD" not in names and b"COMMAND" not in names
