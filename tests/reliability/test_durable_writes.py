"""DISPATCH_DURABLE_WRITES really waits for a replica: with the replica stopped (SIGSTOP),
a critical write is answered DurabilityTimeout (503 durability_timeout) after the WAIT
timeout, on a single Redis with a replica and on a Redis Cluster; with the replica
running, what was acknowledged is already on the replica. Writes that are not critical
(a driver's status, a location fix) never wait."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio import RedisCluster as AsyncCluster

from dispatch.adapters.durable import DurabilityTimeout, DurableScripts
from dispatch.adapters.redis_client import connect, driver_key
from dispatch.adapters.redis_drivers import SCRIPTS, RedisDriverStore
from dispatch.domain.drivers import DriverStatus
from dispatch.durability import Durability
from geoindex import Position, RedisGeoIndex, ScriptRunner
from loadtest.redis_procs import RedisCluster, RedisNode, RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]

WAIT = Durability(replicas=1, timeout_ms=200)
TTL_MS = 30_000


@dataclass
class Pair:
    """A store with durable writes, and the process of the replica it waits for."""

    store: RedisDriverStore
    index: RedisGeoIndex
    replica: Redis
    replica_pid: int
    client: Any


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The replica frozen (SIGSTOP): connected, but acknowledging nothing."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def wait_counted(master_port: int, key: str) -> None:
    """Until the master counts its replica in WAIT: after a full sync, only from the
    replica's first acknowledgement on (up to a second after its link is up)."""
    async with Redis(port=master_port, single_connection_client=True) as raw:
        for _ in range(100):
            await raw.set(key, 1)
            if await raw.execute_command("WAIT", 1, 100) == 1:
                await raw.delete(key)
                return
    raise AssertionError("the replica never acknowledged")


@pytest.fixture(scope="module")
def replicated() -> Iterator[tuple[RedisServer, RedisServer]]:
    with RedisServer() as master, RedisServer() as replica:
        yield master, replica


async def pair_on(client: Any, replica: Redis, pid: int) -> Pair:
    runner = ScriptRunner(client, SCRIPTS)
    index = RedisGeoIndex(client, ttl_ms=TTL_MS, clock=lambda: int(time.time() * 1000))
    store = RedisDriverStore(runner, index, durable=DurableScripts(runner, WAIT))
    return Pair(store, index, replica, pid, client)


@pytest.fixture
async def single(replicated: tuple[RedisServer, RedisServer]) -> AsyncIterator[Pair]:
    master, replica_server = replicated
    replica = Redis(port=replica_server.node.port)
    await replica.execute_command("REPLICAOF", "127.0.0.1", master.node.port)
    await wait_counted(master.node.port, "probe")
    client = connect(master.url, cluster=False, timeout_s=2.0)
    await client.flushall()
    assert replica_server.node.proc is not None
    try:
        yield await pair_on(client, replica, replica_server.node.proc.pid)
    finally:
        await client.aclose()
        await replica.aclose()


async def replica_of_key(cluster: RedisCluster, client: AsyncCluster, key: str) -> RedisNode:
    master = client.get_node_from_key(key)
    async with Redis(port=int(master.port)) as raw:
        port = int((await raw.info("replication"))["slave0"]["port"])
    return next(n for n in cluster.nodes if n.port == port)


@pytest.fixture
async def clustered(redis_cluster: RedisCluster, redis_cluster_url: str) -> AsyncIterator[Pair]:
    client = connect(redis_cluster_url, cluster=True, timeout_s=2.0)
    assert isinstance(client, AsyncCluster)
    await client.initialize()
    node = await replica_of_key(redis_cluster, client, driver_key("d1"))
    await wait_counted(int(client.get_node_from_key(driver_key("d1")).port), "{d1}probe")
    replica = Redis(port=node.port, single_connection_client=True)
    await replica.execute_command("READONLY")  # a cluster replica serves reads only so
    assert node.proc is not None
    try:
        yield await pair_on(client, replica, node.proc.pid)
    finally:
        await client.aclose()
        await replica.aclose()


@pytest.fixture(params=["single", "cluster"])
def pair(request: pytest.FixtureRequest) -> Pair:
    fixture = "single" if request.param == "single" else "clustered"
    value: Pair = request.getfixturevalue(fixture)
    return value


async def fresh_driver(p: Pair, driver_id: str) -> int:
    now = int(time.time() * 1000)
    await p.index.upsert([Position(driver_id, 52.52, 13.405, now, 1)])
    return now


async def test_an_acknowledged_reservation_is_on_the_replica(pair: Pair) -> None:
    now = await fresh_driver(pair, "d1")
    held = await pair.store.reserve("d1", "r1", now, now + 30_000)
    assert held is not None
    # No sleep: the answer came after the replica acknowledged the write.
    assert await pair.replica.hget(driver_key("d1"), "status") == b"reserved"
    assert await pair.store.confirm("d1", "r1", held.fence, now)
    assert await pair.replica.hget(driver_key("d1"), "status") == b"on_ride"
    assert await pair.store.release("d1", "r1", held.fence)
    assert await pair.replica.hget(driver_key("d1"), "status") == b"available"


async def test_a_frozen_replica_turns_the_write_into_a_durability_timeout(pair: Pair) -> None:
    now = await fresh_driver(pair, "d1")
    with stopped(pair.replica_pid):
        started = time.monotonic()
        with pytest.raises(DurabilityTimeout, match="0 of 1 replicas acknowledged"):
            await pair.store.reserve("d1", "r1", now, now + 30_000)
        waited = time.monotonic() - started
        # The write was made on the master; it may or may not survive a failover.
        assert (await pair.store.get("d1")).status is DriverStatus.RESERVED
        # Not critical, so it does not wait: a driver's status, a location fix.
        started_other = time.monotonic()
        await pair.index.upsert([Position("d2", 52.52, 13.405, now, 1)])
        await pair.store.set_status("d2", DriverStatus.OFFLINE, now)
        others = time.monotonic() - started_other
    assert WAIT.timeout_ms / 1000 * 0.9 <= waited < 1.5, waited
    assert others < WAIT.timeout_ms / 1000, others
    # Resumed, the replica catches up and the next critical write is acknowledged.
    assert await pair.store.release("d1", "r1", int((await pair.store.get("d1")).fence))


async def test_a_stale_slot_map_is_learned_again_before_the_pair_is_sent(clustered: Pair) -> None:
    """After a failover the client may still pin the script and its WAIT to the old
    master: its MOVED answer means the script did not run there; the pair goes again to
    the new master, on one connection."""
    client = clustered.client
    key = driver_key("d1")
    right = client.get_node_from_key(key)
    wrong = next(n for n in client.get_primaries() if n.name != right.name)
    client.nodes_manager.slots_cache[client.keyslot(key)] = [wrong]
    now = await fresh_driver(clustered, "d1")
    held = await clustered.store.reserve("d1", "r1", now, now + 30_000)
    assert held is not None
    assert client.get_node_from_key(key).name == right.name
    assert await clustered.replica.hget(key, "status") == b"reserved"


async def test_a_barrier_waits_for_writes_made_before_on_other_connections(pair: Pair) -> None:
    """A retry that finds its work done by a try whose answer was lost writes nothing
    itself; WAIT alone would then cover nothing (its connection made no write) and answer
    at once. The barrier write makes it wait for everything the master had."""
    durable = DurableScripts(ScriptRunner(pair.client), WAIT)
    with stopped(pair.replica_pid):
        await pair.client.set("{d1}first-try", 1)  # made, not acknowledged by a replica
        with pytest.raises(DurabilityTimeout, match="a barrier"):
            await durable.barrier(driver_key("d1"))
    await durable.barrier(driver_key("d1"))  # resumed: the replica catches up
    assert await pair.replica.get("{d1}first-try") == b"1"
