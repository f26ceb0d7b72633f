"""Notifier over Redis sharded pub/sub: an event goes to the instances that hold a listener
for its topic (a driver's WebSocket, a rider's event stream, a request waiting for its
match), and to no other.

Each instance listens on a channel of its own with SSUBSCRIBE (Redis 7). A sharded
channel lives in its slot's shard: SPUBLISH reaches that master and its replicas, where
a plain PUBLISH on a Redis Cluster is relayed over the cluster bus to every node. An
instance records which topics it holds listeners for (adapters/redis_holders.py); a
publisher reads a topic's holders and sends to their channels, so an instance receives
the events of its own sockets and streams, not those of the fleet.

The ops stream wants every ride change: it has a channel of its own (OPS_CHANNEL), and
an instance listens to it only while something there subscribes to the ops topic (an
ops page is open), claiming the ops topic as any other meanwhile. An instance's ops
notices go out in batches, and not at all while nobody claims the topic (ops_outbox.py).

Delivery is at most once: an event published while a channel is being re-subscribed
(a lost connection, the channel's slot moving to another master) or while a listener's
claim is missing from Redis (lost in a failover; renewed within RENEW_EVERY_S) is lost.
That is why a driver gets its pending offer again when it reconnects and every state is
readable over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import MovedError

from dispatch.adapters import ride_codec
from dispatch.adapters.fanout import Fanout
from dispatch.adapters.ops_outbox import OpsOutbox, unbatch
from dispatch.adapters.redis_client import AnyRedis
from dispatch.adapters.redis_holders import HolderRegistry, holders_of, lookups
from dispatch.service_layer.notices import NoticeKind, RideNotice
from dispatch.service_layer.ops_view import OPS_TOPIC
from dispatch.service_layer.ports import Holders, Subscription
from geoindex import ScriptRunner

log = logging.getLogger(__name__)

OPS_CHANNEL = b"dispatch:ops:{events}"
PING_EVERY_S = 5.0
GIVE_UP_WAIT_S = 1.0  # at shutdown, for the claims of the listeners that left


def instance_channel(instance: str) -> bytes:
    return f"dispatch:instance:{{{instance}}}:events".encode()


class _SlotMoved(Exception):
    """The server dropped our subscription: the channel's slot went to another master."""


class ShardChannel:
    """One channel kept SSUBSCRIBEd on the node that serves its slot, across lost
    connections, failovers and slot moves."""

    def __init__(
        self, client: AnyRedis, url: str, channel: bytes, deliver: Callable[[bytes], None]
    ) -> None:
        self._client = client
        self._url = url
        self._channel = channel
        self._deliver = deliver
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._redirect: tuple[str, int] | None = None
        self._failures = 0
        self.subscribed = asyncio.Event()  # set while subscribed

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        self._closing = False
        self._task = asyncio.create_task(self._listen_forever(), name=f"pubsub {self._channel!r}")

    async def stop(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _connection(self) -> Redis:
        # No socket timeout on this connection: it is idle between messages by design;
        # the periodic PING finds a dead peer.
        if self._redirect is not None:
            (host, port), self._redirect = self._redirect, None
        elif isinstance(self._client, RedisCluster):
            await self._client.initialize()
            nodes = self._client.get_nodes()
            # The owner as last known; after a failure any other node, since the owner
            # may be dead (each one answers with a MOVED to the current owner).
            node = (
                self._client.get_node_from_key(self._channel.decode())
                if self._failures == 0
                else None
            ) or nodes[self._failures % len(nodes)]
            host, port = node.host, int(node.port)
        else:
            return Redis.from_url(self._url, socket_connect_timeout=2.0)
        return Redis(host=host, port=port, socket_connect_timeout=2.0)

    async def _listen_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except MovedError as exc:  # asked a node that does not serve the slot
                self._redirect = (exc.host, int(exc.port))
            except _SlotMoved:
                log.info("pub/sub channel %r moved to another master; following", self._channel)
            except Exception as exc:
                self._failures += 1
                log.warning("pub/sub listener lost its connection (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            else:
                backoff = 0.1

    async def _listen_once(self) -> None:
        conn = await self._connection()
        pubsub = conn.pubsub()
        try:
            await pubsub.ssubscribe(self._channel)
            loop = asyncio.get_running_loop()
            next_ping = loop.time() + PING_EVERY_S
            while True:
                msg = await pubsub.get_message(timeout=1.0)
                # redis-py's read timeout can swallow a cancellation that lands at the
                # same moment; without this check stop() could wait forever.
                if self._closing:
                    raise asyncio.CancelledError
                kind = msg and msg["type"]
                if kind == "smessage":
                    self._deliver(bytes(msg["data"]))
                elif kind == "ssubscribe":
                    self.subscribed.set()
                    self._failures = 0
                elif kind == "sunsubscribe":
                    raise _SlotMoved
                if loop.time() >= next_ping:
                    await pubsub.ping()
                    next_ping = loop.time() + PING_EVERY_S
        finally:
            self.subscribed.clear()
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await conn.aclose()


class PubSubNotifier:
    def __init__(self, client: AnyRedis, url: str, instance: str | None = None) -> None:
        self.client = client
        self._fanout = Fanout()
        # A new name per start: a restarted instance never inherits its old claims.
        self.instance = instance or os.urandom(6).hex()
        self._holders = HolderRegistry(client, self.instance)
        self._edge = ScriptRunner(client)  # publishing without redis-py's per-command work
        self._own = ShardChannel(client, url, instance_channel(self.instance), self._deliver)
        self._ops = ShardChannel(client, url, OPS_CHANNEL, self._deliver)
        self._ops_out = OpsOutbox(self._edge, OPS_CHANNEL)
        self._held: dict[str, int] = {}  # topic -> listeners here
        self._syncing: dict[str, asyncio.Task[None]] = {}  # topic -> its last claim change
        self._renewer: asyncio.Task[None] | None = None
        self.subscribed = self._own.subscribed  # set while this instance can be reached
        self.received = 0  # messages this instance's channels brought
        self.unheld = 0  # of those, for a topic nobody here listens to (any more)

    @property
    def ops_sent(self) -> int:
        """Messages this instance sent on the ops channel (each a batch of notices)."""
        return self._ops_out.sent

    async def publish(self, topic: str, notice: RideNotice) -> None:
        await self.publish_many([(topic, notice)])

    async def publish_many(
        self, sends: Sequence[tuple[str, RideNotice]], holders: Holders | None = None
    ) -> None:
        if self._ops_out.wanted():
            self._ops_out.add([encode(t, notice) for t, notice in sends if t == OPS_TOPIC])
        known = dict(holders or {})
        topics = sorted({topic for topic, _ in sends if topic not in known} - {OPS_TOPIC})
        if topics:  # one round trip per node
            known.update(await self.holders(topics))
        # A channel routes by its own slot, as a key does; a topic's notices keep their order.
        publish: list[tuple[Any, tuple[Any, ...]]] = []
        for topic, notice in sends:
            if topic != OPS_TOPIC and known[topic]:
                message = encode(topic, notice)
                publish += [
                    (c, ("SPUBLISH", c, message)) for c in map(instance_channel, known[topic])
                ]
        await self._edge.commands(publish)

    async def holders(self, topics: Sequence[str]) -> Holders:
        found = await self._edge.commands(lookups(topics))
        return dict(zip(topics, holders_of(found), strict=True))

    def subscribe(self, topic: str) -> AbstractAsyncContextManager[Subscription]:
        return self._listening(topic)

    @asynccontextmanager
    async def _listening(self, topic: str) -> AsyncIterator[Subscription]:
        async with self._fanout.subscribe(topic) as subscription:
            self._held[topic] = self._held.get(topic, 0) + 1
            try:
                # Claimed before the caller reads any state: a change stored after that
                # read finds this instance among the topic's holders.
                await asyncio.shield(self._sync(topic))
                yield subscription
            finally:
                self._held[topic] -= 1
                if not self._held[topic]:
                    del self._held[topic]
                    self._sync(topic)  # given up in the background

    def _sync(self, topic: str) -> asyncio.Task[None]:
        """Make Redis (or the ops channel) agree with whether a listener here holds
        `topic`, after the change before it: claims and give-ups of one topic apply in
        the order they were asked for."""
        previous = self._syncing.get(topic)
        task = asyncio.create_task(self._apply(topic, previous))
        self._syncing[topic] = task
        task.add_done_callback(lambda done: self._synced(topic, done))
        return task

    def _synced(self, topic: str, done: asyncio.Task[None]) -> None:
        if self._syncing.get(topic) is done:
            del self._syncing[topic]

    async def _apply(self, topic: str, previous: Awaitable[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous
        held = topic in self._held
        try:
            if topic == OPS_TOPIC:  # and claimed: publishers send to it only while claimed
                if held and not self._ops.running:
                    self._ops.start()
                elif not held and self._ops.running:
                    await self._ops.stop()
            if held:
                await self._holders.claim([topic])
            else:
                await self._holders.give_up(topic)
        except Exception as exc:  # best effort: the renewal claims it again
            log.warning("could not %s %s: %s", "claim" if held else "give up", topic, exc)

    def _deliver(self, message: bytes) -> None:
        self.received += 1
        for one in unbatch(message):  # the ops channel's come in batches
            topic, notice = decode(one)
            if topic not in self._held:
                self.unheld += 1  # a socket that left since the publisher looked
                continue
            self._fanout.deliver(topic, notice)

    async def start(self) -> None:
        self._own.start()
        self._ops_out.start()
        self._renewer = asyncio.create_task(
            self._holders.renew_forever(lambda: list(self._held)), name="pubsub-claims"
        )

    async def close(self) -> None:
        await self._ops_out.close()  # what waits is sent
        if self._syncing:
            # The give-ups of the listeners that just left (a shutdown closes them all):
            # else publishers keep sending their topics here until the claims lapse.
            await asyncio.wait(list(self._syncing.values()), timeout=GIVE_UP_WAIT_S)
        for task in [self._renewer, *self._syncing.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._own.stop()
        await self._ops.stop()


def encode(topic: str, notice: RideNotice) -> bytes:
    """topic, kind and the ride as stored, one line each: the receiving instance renders
    it for its own listeners."""
    return b"%s\n%s\n%s" % (
        topic.encode(),
        notice.kind.value.encode(),
        ride_codec.encode(notice.ride),
    )


def decode(message: bytes) -> tuple[str, RideNotice]:
    topic, kind, ride = message.split(b"\n", 2)
    return topic.decode(), RideNotice(NoticeKind(kind.decode()), ride_codec.decode(ride))
