"""Ride events delivered to the instance that holds the driver's socket, against one
channel every instance subscribes to (the broadcast this service used before), in the
same run on the same 6-node Redis Cluster (3 masters, 3 replicas).

    python -m loadtest.bench.event_delivery [--drivers 600] [--events 3000] [--instances 1,3,6]

For each instance count N: N notifiers in this process, each on its own cluster client
and holding drivers/N of the drivers' sockets (the fleet stays the same, so each instance
holds fewer as N grows); --events offers, each for a random driver, published by a random
instance. Reported for each mode: messages received per instance (and the share of them
for a socket the instance holds), Redis commands per event, and the cluster-bus messages
the nodes exchanged for pub/sub (CLUSTER INFO cluster_stats_messages_publish*_sent: a
PUBLISH is relayed to every other node, an SPUBLISH to its shard's replica only).
Target: per-instance deliveries proportional to the instance's own sockets
(events / N here), not to the fleet's events.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
from typing import Any

from redis.asyncio import Redis

from dispatch.adapters.pubsub_notifier import PubSubNotifier, encode
from dispatch.adapters.redis_client import AnyRedis, connect
from dispatch.domain.geo import LatLng
from dispatch.domain.rides import Ride, RideStatus
from dispatch.service_layer.notices import NoticeKind, RideNotice, driver_topic
from loadtest.bench.harness import calls_delta, machine, redis_calls
from loadtest.redis_procs import RedisCluster

BROADCAST = b"dispatch:events"  # the one channel of the broadcast design


class Broadcast:
    """The design before: every instance SUBSCRIBEs to one channel on some node and keeps
    what is for its own sockets."""

    def __init__(self, client: AnyRedis, port: int, held: set[str]) -> None:
        self.client = client
        self._conn = Redis(port=port)
        self._pubsub = self._conn.pubsub(ignore_subscribe_messages=True)
        self._held = held
        self.received = 0
        self.useful = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._pubsub.subscribe(BROADCAST)
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            msg = await self._pubsub.get_message(timeout=1.0)
            if msg is not None and msg["type"] == "message":
                self.received += 1
                topic = bytes(msg["data"]).split(b"\n", 1)[0].decode()
                self.useful += topic in self._held

    async def publish(self, topic: str, notice: RideNotice) -> None:
        await self.client.publish(BROADCAST, encode(topic, notice))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._conn.aclose()


async def bus_messages(ports: list[int]) -> dict[str, int]:
    """Cluster-bus messages sent, summed over the nodes: pub/sub ones and all."""
    total = {"publish": 0, "publishshard": 0, "all": 0}
    for port in ports:
        async with Redis(port=port) as r:
            info = await r.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
            text = info.decode() if isinstance(info, bytes) else str(info)
            for line in text.split():
                name, _, value = line.partition(":")
                if name == "cluster_stats_messages_sent":
                    total["all"] += int(value)
                elif name in (
                    "cluster_stats_messages_publish_sent",
                    "cluster_stats_messages_publishshard_sent",
                ):
                    total[name.split("_")[3]] += int(value)
    return total


def counts(listener: PubSubNotifier | Broadcast) -> tuple[int, int]:
    """Messages an instance received, and how many of them were for its own sockets."""
    if isinstance(listener, PubSubNotifier):
        return listener.received, listener.received - listener.unheld
    return listener.received, listener.useful


def ride_for(driver_id: str, n: int) -> Ride:
    at = LatLng(52.52, 13.405)
    now = int(time.time() * 1000)
    return Ride(f"r_{n}", f"u{n}", at, None, RideStatus.OFFERED, now, now, driver_id)


async def run_mode(
    mode: str, cluster: RedisCluster, n_instances: int, drivers: int, events: int, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    ports = [node.port for node in cluster.nodes]
    held = [{f"d{i}" for i in range(drivers) if i % n_instances == k} for k in range(n_instances)]
    clients = [connect(cluster.url, cluster=True) for _ in range(n_instances)]
    stack = contextlib.AsyncExitStack()
    async with stack:
        for c in clients:
            await c.initialize()
            stack.push_async_callback(c.aclose)
        listeners: list[PubSubNotifier | Broadcast] = []
        if mode == "targeted":
            for c, mine in zip(clients, held, strict=True):
                notifier = PubSubNotifier(c, cluster.url)
                await notifier.start()
                stack.push_async_callback(notifier.close)
                await asyncio.wait_for(notifier.subscribed.wait(), 10)
                for d in mine:  # a socket per driver: claimed, and listened to
                    await stack.enter_async_context(notifier.subscribe(driver_topic(d)))
                listeners.append(notifier)
        else:
            for k, (c, mine) in enumerate(zip(clients, held, strict=True)):
                b = Broadcast(c, ports[k % len(ports)], {driver_topic(d) for d in mine})
                await b.start()
                stack.push_async_callback(b.close)
                listeners.append(b)
        calls_before, bus_before = redis_calls(ports), await bus_messages(ports)
        started = time.perf_counter()
        sem = asyncio.Semaphore(32)

        async def one(n: int) -> None:
            driver = f"d{rng.randrange(drivers)}"
            notice = RideNotice(NoticeKind.OFFER, ride_for(driver, n))
            async with sem:
                await rng.choice(listeners).publish(driver_topic(driver), notice)

        await asyncio.gather(*(one(n) for n in range(events)))
        published_s = time.perf_counter() - started
        # Until every instance got what it is owed (a broadcast: every event).
        owed = events if mode == "broadcast" else None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = [counts(x) for x in listeners]
            if sum(u for _, u in got) >= events and (
                owed is None or min(r for r, _ in got) >= owed
            ):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # anything late
        # Connection set-up (a client's first commands) and replication are not per event.
        calls = {
            k: v
            for k, v in calls_delta(calls_before, redis_calls(ports)).items()
            if k not in ("hello", "replconf", "client|setinfo")
        }
        bus_after = await bus_messages(ports)
        received, useful = zip(*(counts(x) for x in listeners), strict=True)
    return {
        "instances": n_instances,
        "sockets_per_instance": drivers // n_instances,
        "received_per_instance": list(received),
        "received_per_instance_mean": round(sum(received) / n_instances, 1),
        "for_own_sockets": sum(useful),
        "share_for_own_sockets": round(sum(useful) / max(1, sum(received)), 3),
        "redis_commands_per_event": round(sum(calls.values()) / events, 2),
        "redis_commands": calls,
        "cluster_bus_pubsub_messages": {
            k: bus_after[k] - bus_before[k] for k in ("publish", "publishshard")
        },
        "cluster_bus_messages_all": bus_after["all"] - bus_before["all"],
        "publish_s": round(published_s, 3),
    }


async def main(drivers: int, events: int, instance_counts: list[int]) -> dict[str, Any]:
    cluster = RedisCluster()
    await asyncio.to_thread(cluster.__enter__)
    try:
        runs = []
        for n in instance_counts:
            pair = {}
            for mode in ("broadcast", "targeted"):
                pair[mode] = await run_mode(mode, cluster, n, drivers, events, seed=n)
            b, t = pair["broadcast"], pair["targeted"]
            pair["received_per_instance_ratio"] = round(
                t["received_per_instance_mean"] / b["received_per_instance_mean"], 3
            )
            pubsub_bus = {
                m: sum(pair[m]["cluster_bus_pubsub_messages"].values())
                for m in ("broadcast", "targeted")
            }
            pair["cluster_bus_pubsub_ratio"] = round(
                pubsub_bus["targeted"] / max(1, pubsub_bus["broadcast"]), 3
            )
            runs.append(pair)
    finally:
        await asyncio.to_thread(cluster.__exit__)
    return {
        "bench": "event_delivery",
        "drivers": drivers,
        "events": events,
        "cluster": "6 nodes, 3 masters",
        "runs": runs,
        "machine": machine(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drivers", type=int, default=600)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--instances", default="1,3,6")
    args = parser.parse_args()
    sizes = [int(x) for x in args.instances.split(",")]
    print(json.dumps(asyncio.run(main(args.drivers, args.events, sizes)), indent=2))
