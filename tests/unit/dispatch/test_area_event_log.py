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


async def test_a_read_through_redis_py_takes_its_parsed_reply() -> None:
    """Where the batch path leaves the XREAD to redis-py (here: always), its parsed reply
    (entries as (id, {field: value})) is read as the server's own would be."""

    class Reading(Client):
        def pipeline(self, transaction: bool = True) -> Pipeline:
            pipe = super().pipeline(transaction)

            async def execute(raise_on_error: bool = True) -> list[Any]:
                self.round_trips.append(pipe.queued)
                entries = [(b"1-0", {b"j": b"a"}), (b"1-1", {b"j": b"b"})]
                return [[[STREAM_KEY.encode(), entries]]]

            pipe.execute = execute  # type: ignore[method-assign]
            return pipe

    client = Reading()
    assert await RedisAreaEventLog(client, 1_000).read("0-0", 100) == ("1-1", [b"a", b"b"])
    assert client.round_trips == [[("XREAD", "COUNT", 1000, "STREAMS", STREAM_KEY, "0-0")]]
