"""AreaEventLog on Redis / Redis Cluster: one Redis Stream, bounded with MAXLEN, that
every instance follows to reach its own listeners, and that other services may read with
a consumer group (XREADGROUP): each entry has one field, `j`, the event's JSON."""

from __future__ import annotations

import asyncio

from geoindex import ScriptRunner, translated

STREAM_KEY = "dispatch:area_events"
POLL_S = 0.1


class RedisAreaEventLog:
    def __init__(self, client: object, maxlen: int) -> None:
        self._r = client
        self._maxlen = maxlen
        self._batch = ScriptRunner(client)  # its batch path for plain commands

    async def append(self, events: list[bytes]) -> None:
        """A batch's events in one round trip: an XADD each, in order (the stream is one
        key: on a cluster, one node), sent through the batch path the scripts take
        (packed by hiredis, no redis-py work per command; what it cannot route goes
        through a redis-py pipeline, in order)."""
        if not events:
            return
        xadd = ("XADD", STREAM_KEY, "MAXLEN", "~", self._maxlen, "*", "j")
        await self._batch.commands([(STREAM_KEY, (*xadd, event)) for event in events])

    async def tail(self) -> str:
        with translated():
            last = await self._r.xrevrange(STREAM_KEY, count=1)  # type: ignore[attr-defined]
        return bytes(last[0][0]).decode() if last else "0-0"

    async def read(self, after: str, block_ms: int) -> tuple[str, list[bytes]]:
        """Polled, not a blocking XREAD: a blocking read through the cluster client holds
        up the instance's other commands; an empty poll waits POLL_S (events arrive at
        most that late)."""
        with translated():
            got = await self._r.xread({STREAM_KEY: after}, count=1000)  # type: ignore[attr-defined]
        if not got:
            await asyncio.sleep(min(block_ms / 1000, POLL_S))
            return after, []
        entries = got[0][1] if isinstance(got, list) else next(iter(got.values()))[0]
        return bytes(entries[-1][0]).decode(), [bytes(f[b"j"]) for _, f in entries]

    async def recent(self, count: int) -> list[bytes]:
        with translated():
            last = await self._r.xrevrange(STREAM_KEY, count=count)  # type: ignore[attr-defined]
        return [bytes(f[b"j"]) for _, f in reversed(last)]
