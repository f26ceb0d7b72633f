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
        most that late). Sent through the batch path, routed by the stream's key: redis-py's
        cluster client asks a node `COMMAND GETKEYS` before every XREAD (its keys move with
        its arguments), a round trip each poll."""
        xread = ("XREAD", "COUNT", 1000, "STREAMS", STREAM_KEY, after)
        (got,) = await self._batch.commands([(STREAM_KEY, xread)])
        if not got:
            await asyncio.sleep(min(block_ms / 1000, POLL_S))
            return after, []
        # The server's reply: by stream, each [[id, [field, value, ...]], ...] (RESP3's map
        # or RESP2's list of [stream, entries]); where redis-py sent it instead, its parsed
        # form: entries as (id, {field: value}), in a list of one under RESP3.
        entries = next(iter(got.values())) if isinstance(got, dict) else got[0][1]
        if not isinstance(entries[0][0], bytes | str):
            entries = entries[0]
        return bytes(entries[-1][0]).decode(), [_field_j(f) for _, f in entries]

    async def recent(self, count: int) -> list[bytes]:
        with translated():
            last = await self._r.xrevrange(STREAM_KEY, count=count)  # type: ignore[attr-defined]
        return [bytes(f[b"j"]) for _, f in reversed(last)]


def _field_j(fields: object) -> bytes:
    """An entry's `j`, from the server's [field, value, ...] or redis-py's dict."""
    if isinstance(fields, dict):
        return bytes(fields[b"j"])
    assert isinstance(fields, list)
    return bytes(dict(zip(fields[::2], fields[1::2], strict=True))[b"j"])
