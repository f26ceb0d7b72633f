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

Between the script and WAIT goes a short-lived write on the same slot (a barrier), so that
WAIT also covers a script that wrote nothing because an earlier try, whose answer was
lost, had done the work; `barrier(key)` alone serves a retry that finds its ride already
stored without running a script.

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
BARRIER_KEEP_MS = 10_000  # barrier keys only need to outlive their WAIT


class DurabilityTimeout(BackendUnavailable):
    """Fewer replicas than asked acknowledged the write within the timeout. It ran on the
    master: it may survive or be lost in a failover."""

    code = "durability_timeout"


class ScriptCalls(Protocol):
    """What a store needs to run one script: ScriptRunner and DurableScripts both are."""

    async def call(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any: ...


class DurableScripts:
    """Runs one script call, then a barrier write and WAIT on the same connection (see
    the module's doc and _durably)."""

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
        return await self._durably(keys[0], evalsha, script)

    async def barrier(self, key: str) -> None:
        """Returns once every write made so far on `key`'s master (by anyone: a first try
        whose answer was lost) is on the replicas; DurabilityTimeout otherwise."""
        await self._durably(key, None, None)

    async def _durably(
        self, key: Any, evalsha: tuple[Any, ...] | None, script: Script | None
    ) -> Any:
        """The script (if any), then a barrier write, then WAIT, on one connection to the
        key's master. The barrier is what makes WAIT cover a script that wrote nothing
        (it found its work already done by a try whose answer was lost): WAIT waits for
        the replication offset of its connection's last write, and the barrier's is the
        master's offset at that moment, past every earlier write."""
        barrier = ("SET", barrier_key(key), 1, "PX", BARRIER_KEEP_MS)
        wait = ("WAIT", self.durability.replicas, self.durability.timeout_ms)
        commands = [c for c in (evalsha, barrier, wait) if c is not None]
        what = "a barrier" if script is None else script.name
        for attempt in range(3):
            with translated():
                if self._cluster and (self._relearn or attempt > 0):
                    await self.client.execute_command("EXISTS", key)
                    self._relearn = False
                try:
                    replies = await self._send(commands, key)
                except BaseException:
                    self._relearn = True
                    raise
            if any(isinstance(r, Exception) for r in replies):
                self._relearn = True
            first = replies[0]
            if script is not None and isinstance(first, rx.NoScriptError):
                with translated():
                    await self.client.script_load(script.source)  # a promoted or restarted node
                continue
            if isinstance(first, _REDIRECTS) and self._cluster:
                continue  # it did not run: learn the route and send it all again
            with translated():
                for reply in replies:
                    if isinstance(reply, Exception):
                        raise reply
            acked = int(replies[-1])
            if acked < self.durability.replicas:
                raise DurabilityTimeout(
                    f"{acked} of {self.durability.replicas} replicas acknowledged"
                    f" {what} within {self.durability.timeout_ms} ms"
                )
            return first if script is not None else None
        raise BackendUnavailable(f"{what}: still redirected after 3 tries")

    async def _send(self, commands: list[tuple[Any, ...]], key: Any) -> list[Any]:
        if not self._cluster:
            return await self._send_single(commands)
        node = self.client.get_node_from_key(key)
        piped = [PipelineCommand(i, *c) for i, c in enumerate(commands)]
        await node.execute_pipeline(piped)  # one connection; errors land in .result
        return [c.result for c in piped]

    async def _send_single(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        pool = self.client.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(conn.pack_commands(commands))
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except rx.ResponseError as exc:  # an error reply; the connection is fine
                    replies.append(exc)
            return replies
        except BaseException:
            await conn.disconnect()  # half-read: nobody may use it as it stands
            raise
        finally:
            await pool.release(conn)


def barrier_key(key: Any) -> str:
    """A short-lived key in `key`'s slot: its hash tag, or the whole key as one."""
    text = key.decode() if isinstance(key, bytes) else str(key)
    start = text.find("{")
    end = text.find("}", start + 1)
    tag = text[start : end + 1] if start >= 0 and end > start + 1 else "{" + text + "}"
    return f"dispatch:durable:{tag}"
