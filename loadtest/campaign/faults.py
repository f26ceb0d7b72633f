"""The faults of the campaign, each followed by the healing that brings the stack back to
six nodes (three masters, each with a replica in sync) and two instances:

- kill_master: kill -9 a master; its replica is promoted; the node is restarted (empty:
  the servers keep nothing on disk) and rejoins as the new master's replica.
- pause_master: SIGSTOP a master longer than the node timeout, so its replica is promoted,
  then SIGCONT: a zombie master that comes back and is demoted to replica.
- partition_master: the link between a master and its replica cut (the master drops it,
  the replica is kept from reconnecting) for a random 0.5-1.5 s under load while the
  master goes on answering, then the master killed: what it acknowledged meanwhile was
  never replicated (the case WAIT is for). Healed as kill_master.
- kill_replica: kill -9 a replica, restart it.
- kill_instance: kill -9 one dispatch instance, start it again.

Every wait is bounded; a stack that does not heal is an error of the campaign."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable

import redis

from loadtest.instances import DispatchInstance
from loadtest.redis_procs import RedisCluster, RedisNode

KINDS = ("kill_master", "pause_master", "partition_master", "kill_replica", "kill_instance")
NODE_TIMEOUT_S = 2.0  # loadtest.redis_procs starts cluster nodes with 2000 ms
HEAL_WITHIN_S = 60.0


def _info(node: RedisNode) -> dict[str, object] | None:
    if node.proc is None or node.proc.poll() is not None:
        return None
    try:
        with redis.Redis(port=node.port, socket_timeout=0.5) as r:
            info: dict[str, object] = r.info("replication")
            state = r.execute_command("CLUSTER", "INFO")
            text = state.decode() if isinstance(state, bytes) else str(state)
            info["cluster_ok"] = "cluster_state:ok" in text
            return info
    except (redis.RedisError, OSError):
        return None


def masters(cluster: RedisCluster) -> list[RedisNode]:
    return [n for n in cluster.nodes if (i := _info(n)) and i.get("role") == "master"]


def replicas(cluster: RedisCluster) -> list[RedisNode]:
    return [n for n in cluster.nodes if (i := _info(n)) and i.get("role") == "slave"]


def healthy(cluster: RedisCluster, expect_nodes: int) -> bool:
    """Every node up and ok, three masters each with a replica in sync."""
    infos = [_info(n) for n in cluster.nodes]
    if sum(i is not None for i in infos) < expect_nodes:
        return False
    live = [i for i in infos if i is not None]
    if not all(i["cluster_ok"] for i in live):
        return False
    ms = [i for i in live if i.get("role") == "master"]
    synced = [i for i in live if i.get("role") == "slave" and i.get("master_link_status") == "up"]
    return (
        len(ms) == 3
        and len(synced) == len(live) - 3
        and all(int(str(i.get("connected_slaves", 0))) >= 1 for i in ms)
    )


def wait_until(what: str, test: Callable[[], bool], limit_s: float = HEAL_WITHIN_S) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if test():
            return time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"campaign: not {what} within {limit_s} s")


def _promoted_without(cluster: RedisCluster, gone: RedisNode) -> bool:
    others = [n for n in cluster.nodes if n is not gone]
    return sum(1 for n in others if (i := _info(n)) and i.get("role") == "master") == 3


def kill_master(cluster: RedisCluster, rng: random.Random) -> str:
    victim = rng.choice(masters(cluster))
    victim.stop(sig_kill=True)
    wait_until("promoted", lambda: _promoted_without(cluster, victim))
    victim.start()  # empty; its nodes.conf makes it rejoin, as a replica now
    wait_until("healed", lambda: healthy(cluster, 6))
    return f"redis:{victim.port}"


def _replica_of(cluster: RedisCluster, master: RedisNode) -> RedisNode:
    info = _info(master) or {}
    slave = info.get("slave0")
    port = int(slave["port"]) if isinstance(slave, dict) else -1
    return next(n for n in cluster.nodes if n.port == port)


def partition_master(cluster: RedisCluster, rng: random.Random) -> str:
    victim = rng.choice(masters(cluster))
    replica = _replica_of(cluster, victim)
    with redis.Redis(port=replica.port, socket_timeout=1) as r:
        # A password the master does not have: every reconnection fails at AUTH.
        r.config_set("masterauth", "partitioned")
    try:
        with redis.Redis(port=victim.port, socket_timeout=1) as m:
            m.execute_command("CLIENT", "KILL", "TYPE", "replica")
        time.sleep(rng.uniform(0.5, 1.5))
        victim.stop(sig_kill=True)
    finally:
        with redis.Redis(port=replica.port, socket_timeout=1) as r:
            r.config_set("masterauth", "")
    wait_until("promoted", lambda: _promoted_without(cluster, victim))
    victim.start()
    wait_until("healed", lambda: healthy(cluster, 6))
    return f"redis:{victim.port}"


def pause_master(cluster: RedisCluster, rng: random.Random) -> str:
    victim = rng.choice(masters(cluster))
    assert victim.proc is not None
    os.kill(victim.proc.pid, signal.SIGSTOP)
    try:
        wait_until("promoted", lambda: _promoted_without(cluster, victim))
        time.sleep(NODE_TIMEOUT_S / 2)  # well past the node timeout: a real zombie
    finally:
        os.kill(victim.proc.pid, signal.SIGCONT)
    wait_until("healed", lambda: healthy(cluster, 6))
    return f"redis:{victim.port}"


def kill_replica(cluster: RedisCluster, rng: random.Random) -> str:
    victim = rng.choice(replicas(cluster))
    victim.stop(sig_kill=True)
    time.sleep(rng.uniform(0.5, 2.0))
    victim.start()
    wait_until("healed", lambda: healthy(cluster, 6))
    return f"redis:{victim.port}"


def kill_instance(instances: list[DispatchInstance], rng: random.Random) -> str:
    victim = rng.choice(instances)
    assert victim.proc is not None
    victim.proc.kill()
    victim.proc.wait()
    time.sleep(rng.uniform(0.5, 2.0))
    victim.start()
    victim.wait_ready()
    return victim.instance_id
