"""What a ride's notices cost in writes to Redis: a new ride's driver's listeners are looked
up in the reservation's own write (their key is in the driver's slot) and not again when
the offer goes out; the ops channel's notices go out several to a message, are read in
order (a single one as an older instance sends it, too), are sent at shutdown, and are
not sent while no instance listens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dispatch.adapters.pubsub_notifier import OPS_CHANNEL, PubSubNotifier, encode
from dispatch.adapters.redis_client import connect as connect_redis
from dispatch.adapters.redis_client import driver_key
from dispatch.adapters.redis_holders import HolderRegistry
from dispatch.bootstrap import bootstrap
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import Offer, RideStatus, request
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.notices import NoticeKind, RideNotice, driver_topic
from dispatch.service_layer.ops_view import OPS_TOPIC
from dispatch.service_layer.ports import Subscription
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from geoindex import Position
from geoindex.redis_pipeline import Pipelined
from tests.fake_clock import FakeClock
from tests.waiting import eventually

from .conftest import settings_for

pytestmark = pytest.mark.redis

PICKUP = LatLng(52.52, 13.40)


def notifier_of_deps(deps: Deps) -> PubSubNotifier:
    assert isinstance(deps.notifier, PubSubNotifier)
    return deps.notifier


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bytes of each write the batch path makes to a node."""
    sent: list[bytes] = []
    send = Pipelined._send

    async def recorded(self: Pipelined, node: Any, indices: Any, packed: Any, replies: Any) -> None:
        sent.append(b"".join(packed))
        await send(self, node, indices, packed, replies)

    monkeypatch.setattr(Pipelined, "_send", recorded)
    return sent


@pytest.fixture
async def cluster_deps(request: pytest.FixtureRequest) -> AsyncIterator[Deps]:
    clock = FakeClock()
    async with bootstrap(settings_for("cluster", request), clock=clock) as runtime:
        deps = runtime.deps
        await deps.index.upsert(
            [Position(d, PICKUP.lat, PICKUP.lng + i * 1e-3, clock.now) for i, d in enumerate("ab")]
        )
        yield deps


async def test_a_new_rides_driver_listeners_are_looked_up_in_the_reservations_write(
    cluster_deps: Deps, writes: list[bytes]
) -> None:
    deps = cluster_deps
    notifier = notifier_of_deps(deps)
    rider = Principal(Role.RIDER, "u1")
    # Scripts loaded and connections open: the ride measured below sends only its own.
    first = await request_ride(deps, rider, new_ride_id("u1", None), PICKUP, None)
    assert first.driver_id == "a"
    await HolderRegistry(notifier.client, "i9").claim([driver_topic("b")])  # b's socket
    writes.clear()
    ride = await request_ride(
        deps, Principal(Role.RIDER, "u2"), new_ride_id("u2", None), PICKUP, None
    )
    assert ride.status is RideStatus.OFFERED and ride.driver_id == "b"
    look_ups = [w for w in writes if b"dispatch:holders:driver:" in w]
    assert len(look_ups) == 1  # not looked up again for the offer's notice
    assert driver_key("b").encode() in look_ups[0]  # with the reservation
    offered = [w for w in writes if b"SPUBLISH" in w and b"dispatch:instance:{i9}" in w]
    assert len(offered) == 1  # the offer went to the holder found


async def test_notices_given_their_holders_are_sent_without_a_look_up(
    cluster_deps: Deps, writes: list[bytes]
) -> None:
    notifier = notifier_of_deps(cluster_deps)
    ride = request("r_1", "u1", PICKUP, None, Offer("b", 7, 10.0, 5, 99), 1)
    notice = RideNotice(NoticeKind.OFFER, ride)
    await notifier.publish_many([(driver_topic("b"), notice)], {driver_topic("b"): ["i9"]})
    assert not [w for w in writes if b"ZRANGEBYSCORE" in w]
    assert [w for w in writes if b"SPUBLISH" in w and b"dispatch:instance:{i9}" in w]


@contextlib.asynccontextmanager
async def started(url: str) -> AsyncIterator[PubSubNotifier]:
    client = connect_redis(url, cluster=False)
    notifier = PubSubNotifier(client, url)
    try:
        await notifier.start()
        await asyncio.wait_for(notifier.subscribed.wait(), 5)
        yield notifier
    finally:
        await notifier.close()
        await client.aclose()


def ops_notices(n: int) -> list[RideNotice]:
    return [
        RideNotice(NoticeKind.RIDE, request(f"r{i}", "u1", PICKUP, None, None, i + 1))
        for i in range(n)
    ]


async def heard_once_published_until(
    publisher: PubSubNotifier, listening: Subscription, timeout_s: float
) -> None:
    """The ops channel's listener starts in the background (and a publisher learns of it
    within a second): published until heard."""
    (notice,) = ops_notices(1)

    async def heard() -> bool:
        await publisher.publish(OPS_TOPIC, notice)
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(listening.get(), 0.1) == notice
        return False

    await eventually(heard, timeout_s, what="an ops notice heard")
    with contextlib.suppress(TimeoutError):  # the ones still on their way
        while True:
            await asyncio.wait_for(listening.get(), 0.3)


async def test_ops_notices_go_several_to_a_message_in_order_and_at_shutdown(
    redis_url: str,
) -> None:
    notices = ops_notices(8)
    async with started(redis_url) as listener:
        async with listener.subscribe(OPS_TOPIC) as ops:
            async with started(redis_url) as publisher:
                await heard_once_published_until(publisher, ops, 5)
                before, sent = listener.received, publisher.ops_sent
                for notice in notices[:5]:  # one ride step after another
                    await publisher.publish(OPS_TOPIC, notice)
                assert [await asyncio.wait_for(ops.get(), 5) for _ in range(5)] == notices[:5]
                assert listener.received == before + 1  # one message
                assert publisher.ops_sent == sent + 1
                for notice in notices[5:]:
                    await publisher.publish(OPS_TOPIC, notice)
            # The publisher stopped at once: what waited went out first.
            assert [await asyncio.wait_for(ops.get(), 5) for _ in range(3)] == notices[5:]
            # A message of one notice, as an instance before batches sends it.
            client = listener.client
            await client.execute_command("SPUBLISH", OPS_CHANNEL, encode(OPS_TOPIC, notices[0]))
            assert await asyncio.wait_for(ops.get(), 5) == notices[0]


async def test_ops_notices_are_not_sent_while_nobody_listens_and_are_once_someone_does(
    redis_url: str,
) -> None:
    notices = ops_notices(10)
    async with started(redis_url) as publisher:
        await publisher.publish(OPS_TOPIC, notices[0])

        async def asked() -> bool:
            return publisher.ops_sent == 1  # and learned that nobody listens

        await eventually(asked, 2)
        for notice in notices[1:]:
            await publisher.publish(OPS_TOPIC, notice)
            await asyncio.sleep(0.03)
        assert publisher.ops_sent == 1
        async with started(redis_url) as listener, listener.subscribe(OPS_TOPIC) as ops:
            # Within about a second (the publisher asks again), with some slack.
            await heard_once_published_until(publisher, ops, 3)
