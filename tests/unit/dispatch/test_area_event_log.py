"""The Redis area event log sends a batch's events in one round trip: an XADD each, in
order, in one pipeline (a client that records what is sent, no Redis)."""

from __future__ import annotations

from typing import Any

from dispatch.adapters.redis_area_events import STREAM_KEY, RedisAreaEventLog


class Pipeline:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.queued: list[tuple[Any, ...]] = []

    def xadd(self, key: str, fields: dict[str, bytes], **options: Any) -> None:
        self.queued.append((key, fields, options))

    async def execute(self) -> list[bytes]:
        self.client.round_trips.append(self.queued)
        return [b"0-%d" % i for i in range(len(self.queued))]


class Client:
    def __init__(self) -> None:
        self.round_trips: list[list[tuple[Any, ...]]] = []

    def pipeline(self, transaction: bool = True) -> Pipeline:
        assert transaction is False  # a plain pipeline: no MULTI on a cluster
        return Pipeline(self)

    async def xadd(self, *args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("one XADD at a time: a round trip each")


async def test_a_batch_of_events_is_one_round_trip_in_order() -> None:
    client = Client()
    log = RedisAreaEventLog(client, 1_000)
    events = [b'{"n":%d}' % i for i in range(50)]
    await log.append(events)
    [sent] = client.round_trips
    assert [fields["j"] for _, fields, _ in sent] == events
    assert {key for key, _, _ in sent} == {STREAM_KEY}
    assert all(o == {"maxlen": 1_000, "approximate": True} for _, _, o in sent)
    await log.append([])  # nothing to send: no round trip
    assert len(client.round_trips) == 1
