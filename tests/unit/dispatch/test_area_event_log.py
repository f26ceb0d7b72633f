"""The Redis area event log sends a batch's events in one round trip: an XADD each, in
order. A client that records what is sent (no Redis) gets them through the batch path's
fallback, a redis-py pipeline; the integration tests read them back from a real Redis
and a cluster, where the batch path itself sends them."""

from __future__ import annotations

from typing import Any

from dispatch.adapters.redis_area_events import STREAM_KEY, RedisAreaEventLog


class Pipeline:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.queued: list[tuple[Any, ...]] = []

    def execute_command(self, *command: Any) -> None:
        self.queued.append(command)

    async def execute(self, raise_on_error: bool = True) -> list[bytes]:
        self.client.round_trips.append(self.queued)
        return [b"0-%d" % i for i in range(len(self.queued))]


class Client:
    def __init__(self) -> None:
        self.round_trips: list[list[tuple[Any, ...]]] = []

    def pipeline(self, transaction: bool = True) -> Pipeline:
        assert transaction is False  # a plain pipeline: no MULTI on a cluster
        return Pipeline(self)

    async def execute_command(self, *command: Any) -> bytes:
        self.round_trips.append([command])
        return b"0-0"


async def test_a_batch_of_events_is_one_round_trip_in_order() -> None:
    client = Client()
    log = RedisAreaEventLog(client, 1_000)
    events = [b'{"n":%d}' % i for i in range(50)]
    await log.append(events)
    [sent] = client.round_trips
    assert sent == [("XADD", STREAM_KEY, "MAXLEN", "~", 1_000, "*", "j", e) for e in events]
    await log.append([])  # nothing to send: no round trip
    assert len(client.round_trips) == 1
    await log.append(events[:1])
    assert client.round_trips[1] == [
        ("XADD", STREAM_KEY, "MAXLEN", "~", 1_000, "*", "j", events[0])
    ]
