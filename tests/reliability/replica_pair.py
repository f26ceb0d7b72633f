"""A master and its replica (two redis-servers of our own), and a failover played by
hand: cut the replica off at a chosen moment (it keeps what it has and misses what
follows), kill the master, serve from the replica. What the replica holds is exactly what
had replicated when it was cut off.

The replica is cut off by making it a master of its own (REPLICAOF NO ONE), not by
freezing it: a frozen replica's socket still buffers what the master sends, and it would
read those writes once resumed."""

from __future__ import annotations

from types import TracebackType

from redis.asyncio import Redis

from loadtest.redis_procs import RedisServer


class ReplicaPair:
    def __init__(self) -> None:
        self.master = RedisServer()
        self.replica = RedisServer()

    async def __aenter__(self) -> ReplicaPair:
        self.master.__enter__()
        self.replica.__enter__()
        async with Redis(port=self.replica.node.port) as r:
            await r.execute_command("REPLICAOF", "127.0.0.1", self.master.node.port)
        await self.wait_counted()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.master.__exit__()
        self.replica.__exit__()

    @property
    def master_url(self) -> str:
        return self.master.url

    @property
    def replica_url(self) -> str:
        return self.replica.url

    async def wait_counted(self) -> None:
        """Until the master counts the replica in WAIT (from its first acknowledgement
        after the full sync) and the replica has everything written so far."""
        async with Redis(port=self.master.node.port, single_connection_client=True) as m:
            for _ in range(100):
                await m.set("replica-pair-probe", 1)
                if await m.execute_command("WAIT", 1, 100) == 1:
                    await m.delete("replica-pair-probe")
                    await m.execute_command("WAIT", 1, 1000)
                    return
        raise AssertionError("the replica never acknowledged")

    async def cut_off(self) -> None:
        """From now on the replica gets nothing more: the master has no replica."""
        async with Redis(port=self.replica.node.port) as r:
            await r.execute_command("REPLICAOF", "NO", "ONE")

    def kill_master(self) -> None:
        """kill -9: the replica, cut off before, takes over with what it has."""
        self.master.node.stop(sig_kill=True)
