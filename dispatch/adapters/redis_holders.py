"""Which instances hold a listener (a driver's WebSocket, a rider's event stream, a ride
request waiting for its match, an ops page) for a topic: one sorted set per topic, member
= instance, score = when that claim lapses (ms). A topic's set lives in its subject's
slot (holders_key), so a look-up goes in one write with a call on that subject.

An instance claims a topic when its first local listener subscribes, renews every claim
it still holds every RENEW_EVERY_S, and gives a topic up when its last listener leaves.
A claim it never gave up (the instance died) lapses by itself: publishers skip it, and
the key expires with its last claim."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import cast

from dispatch.adapters.redis_client import AnyRedis
from dispatch.service_layer.ops_view import OPS_TOPIC
from geoindex import translated

log = logging.getLogger(__name__)

CLAIM_MS = 60_000
RENEW_EVERY_S = 20.0  # a third of a claim: two renewals may fail before one lapses
RENEW_BATCH = 500  # claims per pipeline


# Topics whose holders share their subject's hash tag: a driver's with the driver's own
# keys (dispatch:driver:{<id>}, the index's gi:d:{<id>}), so a new ride's look-up of its
# driver's holders goes in the reservation's write; a ride's with the ride's key.
_SUBJECT_TAGGED = ("driver", "ride")


def holders_key(topic: str) -> str:
    kind, sep, subject = topic.partition(":")
    if sep and kind in _SUBJECT_TAGGED:
        return f"dispatch:holders:{kind}:{{{subject}}}"
    if topic == OPS_TOPIC:  # the ops channel's slot: asked with a publish there, one write
        return "dispatch:holders:ops:{events}"
    return f"dispatch:holders:{{{topic}}}"


def now_ms() -> int:
    return int(time.time() * 1000)


def lookups(topics: Sequence[str]) -> list[tuple[str, tuple[str | int, ...]]]:
    """The commands reading each topic's holders (for ScriptRunner.commands)."""
    now = now_ms()
    return [(k, ("ZRANGEBYSCORE", k, now, "+inf")) for k in map(holders_key, topics)]


def holders_of(replies: Sequence[object]) -> list[list[str]]:
    """The holders each of lookups()'s commands found."""
    return [[h.decode() for h in cast(list[bytes], found)] for found in replies]


class HolderRegistry:
    def __init__(self, client: AnyRedis, instance: str) -> None:
        self._r = client
        self.instance = instance

    async def claim(self, topics: Iterable[str]) -> None:
        topics = list(topics)
        now = now_ms()
        until = now + CLAIM_MS
        for start in range(0, len(topics), RENEW_BATCH):
            # Not a transaction: each topic is its own slot; a pipeline only saves trips.
            pipe = self._r.pipeline(transaction=False)
            for topic in topics[start : start + RENEW_BATCH]:
                key = holders_key(topic)
                pipe.zremrangebyscore(key, "-inf", now)  # claims of dead instances
                pipe.zadd(key, {self.instance: until})
                pipe.pexpire(key, CLAIM_MS)
            with translated():
                await pipe.execute()

    async def give_up(self, topic: str) -> None:
        with translated():
            await self._r.zrem(holders_key(topic), self.instance)

    async def holders(self, topic: str) -> list[str]:
        """The instances whose claim on `topic` has not lapsed."""
        with translated():
            found = await self._r.zrangebyscore(holders_key(topic), now_ms(), "+inf")
        return [h.decode() for h in cast(list[bytes], found)]

    async def renew_forever(self, held: Callable[[], list[str]]) -> None:
        """Renew the claims on the topics `held()` names, until cancelled."""
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            topics = held()
            try:
                await self.claim(topics)
            except Exception as exc:  # Redis away: the next round tries again
                log.warning("could not renew %d listener claims: %s", len(topics), exc)
