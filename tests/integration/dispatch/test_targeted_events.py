"""Events reach the instance that holds the socket or stream they are for, and no other:
an instance holding no listener receives nothing, a driver reconnecting to another
instance gets its pending offer and its later events there, and an instance's channel
follows its slot when a live cluster moves it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio import RedisCluster as AsyncCluster

from dispatch.adapters.pubsub_notifier import PubSubNotifier, instance_channel
from dispatch.adapters.redis_client import connect as connect_redis
from dispatch.adapters.redis_holders import HolderRegistry, holders_key
from dispatch.domain.geo import LatLng
from dispatch.domain.rides import Ride, RideStatus
from dispatch.entrypoints import appkeys
from dispatch.service_layer.notices import NoticeKind, RideNotice, driver_topic
from loadtest.redis_procs import RedisCluster
from tests.waiting import eventually

from .conftest import Instance
from .test_multi_instance import backend_settings, pair
from .test_streams import BERLIN, connect, location, recv_type

pytestmark = pytest.mark.redis


def notifier(inst: Instance) -> PubSubNotifier:
    found = inst.runner.app[appkeys.RUNTIME].deps.notifier
    assert isinstance(found, PubSubNotifier)
    return found


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_an_instance_receives_none_of_the_events_for_sockets_it_does_not_hold(
    kind: str, request: pytest.FixtureRequest
) -> None:
    async with pair(backend_settings(kind, request)) as (a, b):
        async with await connect(b, "d1") as ws:
            await ws.send_json(location(1))
            await recv_type(ws, "ack")
            for n in range(3):  # offered on A, accepted on B, completed on A
                status, ride, _ = await a.call(
                    "POST", "/v1/rides", ("rider", f"u{n}"), json={"pickup": BERLIN}
                )
                assert status == 201 and ride["driver_id"] == "d1"
                assert (await recv_type(ws, "offer"))["ride"]["id"] == ride["id"]
                await ws.send_json({"type": "accept", "ride_id": ride["id"]})
                assert (await recv_type(ws, "ride"))["ride"]["status"] == "accepted"
                for step in ("arrived", "start", "complete"):
                    status, _, _ = await a.call(
                        "POST", f"/v1/rides/{ride['id']}/{step}", ("driver", "d1")
                    )
                    assert status == 200, step
                assert (await recv_type(ws, "ride"))["ride"]["status"] == "arrived"
        # A holds no socket and no stream: of the fleet's events it received none.
        assert notifier(a).received == 0

        # B received its driver's events (offer, accept ... complete: 5 per ride), and
        # nothing for a topic it does not hold.
        # (the last ride's last events may still be on their way when the socket closes)
        async def all_five_per_ride() -> bool:
            return notifier(b).received >= 3 * 5

        await eventually(all_five_per_ride, timeout_s=5)
        assert notifier(b).unheld == 0


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_a_driver_reconnecting_to_another_instance_gets_its_offer_and_events_there(
    kind: str, request: pytest.FixtureRequest
) -> None:
    async with pair(backend_settings(kind, request)) as (a, b):
        async with await connect(a, "d1") as ws:
            await ws.send_json(location(1))
            await recv_type(ws, "ack")
            status, ride, _ = await a.call(
                "POST", "/v1/rides", ("rider", "u1"), json={"pickup": BERLIN}
            )
            assert status == 201 and ride["driver_id"] == "d1"
            assert (await recv_type(ws, "offer"))["ride"]["id"] == ride["id"]
        async with await connect(b, "d1") as ws:
            offer = await recv_type(ws, "offer")  # sent again on connect: nothing lost
            assert offer["ride"]["id"] == ride["id"]
            # A gave its claim up when the socket there closed; B's socket claimed d1.
            registry = HolderRegistry(notifier(b).client, "-")

            async def b_alone() -> bool:
                return await registry.holders(driver_topic("d1")) == [notifier(b).instance]

            await eventually(b_alone, what="B alone holding d1")
            received_on_a = notifier(a).received
            status, _, _ = await a.call("POST", f"/v1/rides/{ride['id']}/cancel", ("rider", "u1"))
            assert status == 200
            frame = await recv_type(ws, "ride")
            assert frame["ride"]["status"] == "cancelled"
        assert notifier(a).received == received_on_a


async def test_a_claim_lapses_and_a_given_up_one_is_gone(redis_url: str) -> None:
    client = connect_redis(redis_url, cluster=False)
    try:
        mine, dead = HolderRegistry(client, "i1"), HolderRegistry(client, "i2")
        await mine.claim(["driver:d1"])
        await dead.claim(["driver:d1"])
        assert sorted(await mine.holders("driver:d1")) == ["i1", "i2"]
        # i2 died a minute ago: its claim's time is up, publishers skip it.
        await client.zadd(holders_key("driver:d1"), {"i2": int(time.time() * 1000) - 1})
        assert await mine.holders("driver:d1") == ["i1"]
        await mine.give_up("driver:d1")
        assert await mine.holders("driver:d1") == []
        assert 0 < await client.pttl(holders_key("driver:d1")) <= 60_000  # all of it lapses
    finally:
        await client.aclose()


@asynccontextmanager
async def fresh_cluster() -> AsyncIterator[RedisCluster]:
    cluster = RedisCluster()
    await asyncio.to_thread(cluster.__enter__)
    try:
        yield cluster
    finally:
        await asyncio.to_thread(cluster.__exit__)


async def move_slot_of(cluster: RedisCluster, key: bytes) -> None:
    """Move the slot of `key` to another master by hand, as `redis-cli --cluster reshard`
    moves each slot (it holds no keys: no MIGRATE)."""
    raw = AsyncCluster.from_url(cluster.url)
    try:
        await raw.initialize()
        slot = raw.keyslot(key)
        owner = raw.get_node_from_key(key.decode())
        assert owner is not None
        nodes = [(n, Redis(host=n.host, port=int(n.port))) for n in raw.get_primaries()]
        try:
            ids = {n.name: (await c.execute_command("CLUSTER", "MYID")).decode() for n, c in nodes}
            conn = {n.name: c for n, c in nodes}
            target = next(n.name for n, _ in nodes if n.name != owner.name)
            await conn[target].execute_command(
                "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[owner.name]
            )
            await conn[owner.name].execute_command(
                "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target]
            )
            for c in conn.values():
                await c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
        finally:
            for _, c in nodes:
                await c.aclose()
    finally:
        await raw.aclose()


@pytest.mark.slow
async def test_an_instance_channel_follows_its_slot_to_another_master() -> None:
    async with fresh_cluster() as cluster:
        client = connect_redis(cluster.url, cluster=True)
        publisher = connect_redis(cluster.url, cluster=True)
        notifier = PubSubNotifier(client, cluster.url)
        sender = PubSubNotifier(publisher, cluster.url)
        ride = Ride("r_1", "u1", LatLng(52.52, 13.405), None, RideStatus.OFFERED, 1, 1, "d1")
        try:
            await client.initialize()
            await notifier.start()
            await asyncio.wait_for(notifier.subscribed.wait(), 5)
            async with notifier.subscribe(driver_topic("d1")) as sub:
                await sender.publish(driver_topic("d1"), RideNotice(NoticeKind.OFFER, ride))
                assert (await asyncio.wait_for(sub.get(), 5)).ride.id == "r_1"
                await move_slot_of(cluster, instance_channel(notifier.instance))
                # The old owner dropped the subscription; the listener follows the slot.
                got: list[Any] = []

                async def delivered() -> bool:
                    await sender.publish(driver_topic("d1"), RideNotice(NoticeKind.RIDE, ride))
                    with contextlib.suppress(TimeoutError):
                        got.append(await asyncio.wait_for(sub.get(), 0.2))
                    return bool(got)

                await eventually(delivered, 10, what="delivery after the slot moved")
        finally:
            await notifier.close()
            await sender.close()
            await client.aclose()
            await publisher.aclose()
