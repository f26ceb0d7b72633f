"""Notifier over Redis pub/sub: reaches a driver's WebSocket or a rider's event stream on
whichever instance holds it.

Every instance publishes to one channel and subscribes to it, then delivers locally by
topic. On Redis Cluster a plain PUBLISH is forwarded over the cluster bus to every node,
so the subscriber may sit on any node: we open our own connection to one (rotating
through the nodes on failure) instead of relying on the cluster client's pub/sub
routing, which follows the channel's slot and would tie us to one master. Pub/sub is at
most once: a message sent while a subscriber reconnects is lost, which is why a driver
gets its pending offer again when it reconnects and every state is readable over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AbstractAsyncContextManager

from redis.asyncio import Redis, RedisCluster

from dispatch.adapters import ride_codec
from dispatch.adapters.fanout import Fanout
from dispatch.adapters.redis_client import AnyRedis
from dispatch.service_layer.notices import NoticeKind, RideNotice
from dispatch.service_layer.ports import Subscription
from geoindex import translated

log = logging.getLogger(__name__)

CHANNEL = b"dispatch:events"
PING_EVERY_S = 5.0


class PubSubNotifier:
    def __init__(self, client: AnyRedis, url: str) -> None:
        self._client = client
        self._url = url
        self._fanout = Fanout()
        self._task: asyncio.Task[None] | None = None
        self._node = 0
        self._closing = False
        self.subscribed = asyncio.Event()  # set while the listener is subscribed

    async def publish(self, topic: str, notice: RideNotice) -> None:
        with translated():
            await self._client.publish(CHANNEL, encode(topic, notice))

    def subscribe(self, topic: str) -> AbstractAsyncContextManager[Subscription]:
        return self._fanout.subscribe(topic)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="pubsub-listener")

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _subscriber(self) -> Redis:
        # No socket timeout on this connection: it is idle between messages by design;
        # the periodic PING finds a dead peer.
        if isinstance(self._client, RedisCluster):
            await self._client.initialize()
            nodes = self._client.get_nodes()
            node = nodes[self._node % len(nodes)]
            self._node += 1
            return Redis(host=node.host, port=int(node.port), socket_connect_timeout=2.0)
        return Redis.from_url(self._url, socket_connect_timeout=2.0)

    async def _listen_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed.clear()
                log.warning("pub/sub listener lost its connection (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            else:
                backoff = 0.1

    async def _listen_once(self) -> None:
        conn = await self._subscriber()
        pubsub = conn.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANNEL)
            self.subscribed.set()
            loop = asyncio.get_running_loop()
            next_ping = loop.time() + PING_EVERY_S
            while True:
                msg = await pubsub.get_message(timeout=1.0)
                # redis-py's read timeout can swallow a cancellation that lands at the
                # same moment; without this check close() could wait forever.
                if self._closing:
                    raise asyncio.CancelledError
                if msg is not None and msg.get("type") == "message":
                    self._fanout.deliver(*decode(bytes(msg["data"])))
                if loop.time() >= next_ping:
                    await pubsub.ping()
                    next_ping = loop.time() + PING_EVERY_S
        finally:
            self.subscribed.clear()
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await conn.aclose()


def encode(topic: str, notice: RideNotice) -> bytes:
    """topic, kind and the ride as stored, one line each: every instance renders it for
    its own listeners."""
    return b"%s\n%s\n%s" % (
        topic.encode(),
        notice.kind.value.encode(),
        ride_codec.encode(notice.ride),
    )


def decode(message: bytes) -> tuple[str, RideNotice]:
    topic, kind, ride = message.split(b"\n", 2)
    return topic.decode(), RideNotice(NoticeKind(kind.decode()), ride_codec.decode(ride))
