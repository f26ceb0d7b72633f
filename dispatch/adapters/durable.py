"""Replica-acknowledged writes (DISPATCH_DURABLE_WRITES): a script call answered only once
`replicas` replicas of its master have it, so that a failover right after the answer
cannot lose it.

Redis replication is asynchronous; `WAIT numreplicas timeout` blocks until the replicas
acknowledge every write made so far *on the connection it is sent on*, and cannot run
inside a script. So the script and its WAIT travel together on one connection to the
master of the script's keys:

- single Redis: the pair on one connection taken from the pool;
- Redis Cluster: the pair is sent to the node that holds the key's slot, through that
  node's own pipeline (one connection). redis-py's cluster pipeline cannot be used: it
  routes WAIT (which has no key) to some node of its choice, and after a MOVED it re-sends
  the script alone on another connection.

Neither path lets redis-py re-send the pair after a broken connection: a re-sent script
call is answered from its call id without writing (lua/*.lua), so a WAIT on the new
connection would cover nothing and report the first send's write as replicated. A broken
connection is a 503; the client's retry is a new call.

A WAIT that returns fewer replicas than asked is a DurabilityTimeout (503
`durability_timeout`): the write was made on the master and may or may not survive; the
client's retry (Idempotency-Key, or repeating the step) settles it through the usual
repairs. Only the writes a double booking or a lost acknowledged ride depends on go
through here (bootstrap wires them); index writes and location fixes never wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from redis import exceptions as rx
from redis.asyncio import RedisCluster
from redis.asyncio.cluster import PipelineCommand

from dispatch.durability import Durability
from geoindex import BackendUnavailable, Script, ScriptRunner, translated

# A redirect means the script did not run: learn the new route and send the pair again.
_REDIRECTS = (rx.MovedError, rx.AskError, rx.TryAgainError)


class DurabilityTimeout(BackendUnavailable):
    """Fewer replicas than asked acknowledged the write within the timeout. It ran on the
    master: it may survive or be lost in a failover."""

    code = "durability_timeout"


class ScriptCalls(Protocol):
    """What a store needs to run one script: ScriptRunner and DurableScripts both are."""

    async def call(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any: ...


class DurableScripts:
    """Runs one script call, then WAIT on the same connection (see the module's doc)."""

    def __init__(self, runner: ScriptRunner, durability: Durability) -> None:
        self._runner = runner
        self.client = runner.client
        self.durability = durability
        self._cluster = isinstance(runner.client, RedisCluster)
        # After a connection error the node we pin to may be gone; the next call first
        # lets redis-py route a plain command, which refreshes its slot map.
        self._relearn = False

    async def call(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        evalsha = ("EVALSHA", script.sha, len(keys), *keys, *args)
        for attempt in range(3):
            with translated():
                if self._cluster and (self._relearn or attempt > 0):
                    await self.client.execute_command("EXISTS", keys[0])
                    self._relearn = False
                try:
                    result, acked = await self._send(evalsha, keys[0])
                except BaseException:
                    self._relearn = True
                    raise
            if isinstance(result, Exception) or isinstance(acked, Exception):
                self._relearn = True
            if isinstance(result, rx.NoScriptError):
                with translated():
                    await self.client.script_load(script.source)  # a promoted or restarted node
                continue
            if isinstance(result, _REDIRECTS) and self._cluster:
                continue
            with translated():
                if isinstance(result, Exception):
                    raise result
                if isinstance(acked, Exception):
                    raise acked
            if int(acked) < self.durability.replicas:
                raise DurabilityTimeout(
                    f"{int(acked)} of {self.durability.replicas} replicas acknowledged"
                    f" {script.name} within {self.durability.timeout_ms} ms"
                )
            return result
        raise BackendUnavailable(f"{script.name}: still redirected after 3 tries")

    async def _send(self, evalsha: tuple[Any, ...], key: Any) -> tuple[Any, Any]:
        wait = ("WAIT", self.durability.replicas, self.durability.timeout_ms)
        if not self._cluster:
            return await self._send_single(evalsha, wait)
        node = self.client.get_node_from_key(key)
        commands = [PipelineCommand(0, *evalsha), PipelineCommand(1, *wait)]
        await node.execute_pipeline(commands)  # one connection; errors land in .result
        return commands[0].result, commands[1].result

    async def _send_single(
        self, evalsha: tuple[Any, ...], wait: tuple[Any, ...]
    ) -> tuple[Any, Any]:
        pool = self.client.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(conn.pack_commands([evalsha, wait]))
            replies: list[Any] = []
            for _ in range(2):
                try:
                    replies.append(await conn.read_response())
                except rx.ResponseError as exc:  # an error reply; the connection is fine
                    replies.append(exc)
            return replies[0], replies[1]
        except BaseException:
            await conn.disconnect()  # half-read: nobody may use it as it stands
            raise
        finally:
            await pool.release(conn)
