"""Local delivery of ride notices to this instance's listeners (WebSockets, SSE).

Each subscriber gets a bounded queue: a listener too slow to keep up loses messages
rather than growing memory without bound (notifications are best effort; the state is
always readable over HTTP)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from dispatch.service_layer.notices import RideNotice
from dispatch.service_layer.ports import Holders, Subscription

log = logging.getLogger(__name__)

QUEUE_SIZE = 256


class _QueueSubscription:
    def __init__(self, queue: asyncio.Queue[RideNotice]) -> None:
        self._queue = queue

    async def get(self) -> RideNotice:
        return await self._queue.get()


class Fanout:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[RideNotice]]] = {}

    def deliver(self, topic: str, notice: RideNotice) -> None:
        for queue in self._subscribers.get(topic, ()):
            try:
                queue.put_nowait(notice)
            except asyncio.QueueFull:
                log.warning("listener on %s is too slow; message dropped", topic)

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        queue: asyncio.Queue[RideNotice] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.setdefault(topic, set()).add(queue)
        try:
            yield _QueueSubscription(queue)
        finally:
            subs = self._subscribers.get(topic)
            if subs is not None:
                subs.discard(queue)
                if not subs:
                    del self._subscribers[topic]


class MemoryNotifier:
    """The embedded backend's notifier: one process, so local delivery is all of it."""

    def __init__(self) -> None:
        self._fanout = Fanout()

    async def publish(self, topic: str, notice: RideNotice) -> None:
        self._fanout.deliver(topic, notice)

    async def publish_many(
        self, sends: Sequence[tuple[str, RideNotice]], holders: Holders | None = None
    ) -> None:
        for topic, notice in sends:
            self._fanout.deliver(topic, notice)

    async def holders(self, topics: Sequence[str]) -> Holders:
        return {}  # every listener is here: nothing to look up

    def subscribe(self, topic: str) -> AbstractAsyncContextManager[Subscription]:
        return self._fanout.subscribe(topic)
