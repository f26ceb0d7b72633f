"""One round trip per node for a batch of commands, without redis-py's per-command work.

redis-py packs every argument of every command in Python, looks up the cluster slot per
command and reads each reply under its own `asyncio.timeout`; for a batch of 500
EVALSHAs that is most of the client's time. Here a batch is packed in C (geoindex/_resp.c:
the bytes hiredis's packer makes, without its sprintf per argument),
grouped by node (on a cluster: by the slot of the call's keys in the client's own slot
map), written on one connection taken from that node's pool, and its replies read with
that connection's parser under one deadline (the client's socket timeout) for the batch,
the deadlines of all batches in flight kept by one timer (_Deadlines).

Whatever redis-py knows how to handle and this path does not is left to it: a command
that cannot be packed or routed here (no keys, keys in several slots, an uninitialised
cluster client, a slot no node covers), a reply that redirects or asks again (MOVED,
ASK, TRYAGAIN, CLUSTERDOWN, READONLY) or names a missing script (NOSCRIPT), and the
commands whose replies a broken connection did not deliver come back as FALLBACK, for
the caller to send through redis-py. Other error replies come back as the exception
objects redis-py itself would give (the same parser makes them). A connection whose
replies were not all read (a timeout, a cancellation, any error) is disconnected before
it goes back to its pool: its next user would read the answers meant for this batch.
A command whose keys are NodeKeys goes to the node holding them all, whatever their
slots; redis-py cannot send one (it routes a command by one slot), so FALLBACK is its
caller's to handle.

Inside `together()`, the batches that tasks started together (asyncio.gather's) give one
node in the same turn of the event loop go out in one write, read as one batch; the
first of them waits one turn for the others.

GEOINDEX_REDIS_PIPELINED=0 in the environment sends everything through redis-py instead
(a switch for comparing the two, and for a redis-py upgrade that changes the internals
used here: a connection's `_parser` and `_writer`, a cluster client's `_initialize`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import hiredis
from redis import exceptions as rx
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import Pipeline
from redis.crc import key_slot

from geoindex._resp import pack_command

Command = tuple[Any, ...]  # the command's name, then its arguments (str, bytes, int, float)


class _Fallback:
    def __repr__(self) -> str:
        return "FALLBACK"


FALLBACK: Any = _Fallback()  # in a reply's place: "send this one through redis-py"

# Replies that mean the command did not run where it was sent, and that redis-py's own
# path handles (it follows redirections, refreshes its slot map, waits out a failover;
# the script runner loads a missing script).
_NOT_RUN_HERE = (
    rx.AskError,  # also MovedError
    rx.TryAgainError,
    rx.ClusterDownError,  # also MasterDownError
    rx.ReadOnlyError,
    rx.NoScriptError,
)


_TOGETHER: ContextVar[bool] = ContextVar("geoindex_together", default=False)

# On a single Redis, up to this many connections stay out of the client's pool between
# batches, ready for the next: redis-py 8's pool takes a lock and a condition, a timeout,
# a check for unread data and its metrics' bookkeeping for every get and release, about
# as much as the rest of a one-command batch. A kept connection is as clean as one the
# pool hands out (a batch reads all its replies or disconnects it), is health-checked as
# any (PING past the client's interval) and is closed with the pool (it is in use there).
# Only from a pool of 16 connections or more, one per 16 (redis-py's own calls on the
# same client must still find one).
KEEP_CONNECTIONS = 4


@contextmanager
def together() -> Iterator[None]:
    """Batches for one node from the tasks started in this block, given in the same turn
    of the event loop, go out in one write (one round trip where they share a node).
    A task started inside keeps it for its life, as any context variable (a sender task
    a call in the block starts sends its later batches this way too: the same commands
    and replies, each batch a turn later)."""
    token = _TOGETHER.set(True)
    try:
        yield
    finally:
        _TOGETHER.reset(token)


class _Forming:
    """A node's batch not yet written, that other callers in the same turn may join."""

    def __init__(self, packed: list[bytes]) -> None:
        self.packed = list(packed)
        self.skipped = 0  # commands of a caller cancelled before the write, left out
        self.done: asyncio.Future[list[Any]] | None = None  # made once someone joins


# By client and node (another client's node may compare equal); an entry lives only from
# a batch's start to its write.
_forming: dict[tuple[int, Any], _Forming] = {}
_sending: set[asyncio.Task[None]] = set()


class NodeKeys(tuple[Any, ...]):
    """A command's keys that route it to the node holding them all, whatever their slots
    (a script taking keys of several slots of one node, declaring none); a command whose
    keys several nodes hold goes nowhere (FALLBACK), redis-py could not send it either."""


class Pipelined:
    """Sends batches of commands for `client` (redis-py's asyncio Redis or RedisCluster;
    anything else, such as a pipeline or a single-connection client, gets FALLBACK for
    every command)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        single = isinstance(client, Redis) and not isinstance(client, Pipeline)
        usable = self._cluster or (single and not client.single_connection_client)
        self._usable = usable and os.environ.get("GEOINDEX_REDIS_PIPELINED", "1") != "0"
        # On a single Redis: connections taken from the client's pool and kept between
        # batches (see KEEP_CONNECTIONS), from a pool large enough to spare them.
        self._kept: list[Any] = []
        self._deadlines = _Deadlines()
        pool_size = getattr(getattr(client, "connection_pool", None), "max_connections", 0)
        self._keep = min(KEEP_CONNECTIONS, pool_size // 16) if single else 0

    async def run(self, commands: Sequence[Command], keys: Sequence[Sequence[Any]]) -> list[Any]:
        """The replies to `commands` in order (each command's `keys` route it on a
        cluster), error replies as exception objects, FALLBACK where redis-py must send
        the command instead."""
        replies: list[Any] = [FALLBACK] * len(commands)
        if not self._usable:
            return replies
        batches: dict[Any, tuple[list[int], list[bytes]]] = {}
        for i, command in enumerate(commands):
            packed = pack_command(command)  # str, bytes, int and float: no sprintf
            if packed is NotImplemented:
                try:
                    packed = hiredis.pack_command(command)
                except TypeError:  # an argument redis-py rejects with its own DataError
                    continue
            node = self._node(keys[i])
            if node is not None:
                batch = batches.setdefault(node, ([], []))
                batch[0].append(i)
                batch[1].append(packed)
        send = self._send_together if _TOGETHER.get() else self._send
        if len(batches) == 1:
            ((node, (indices, packed)),) = batches.items()
            await send(node, indices, packed, replies)
        elif batches:
            await asyncio.gather(*(send(node, i, p, replies) for node, (i, p) in batches.items()))
        return replies

    async def _send_together(
        self, node: Any, indices: list[int], packed: list[bytes], replies: list[Any]
    ) -> None:
        """_send, joined by the batches other callers give the node in this turn."""
        at = id(self._client), node
        forming = _forming.get(at)
        if forming is not None:  # not yet written: join it
            start = len(forming.packed)
            forming.packed += packed
            if forming.done is None:
                forming.done = asyncio.get_running_loop().create_future()
                forming.done.add_done_callback(_retrieved)
            got = await asyncio.shield(forming.done)
            start -= forming.skipped
            for k, i in enumerate(indices):
                replies[i] = got[start + k]
            return
        forming = _forming[at] = _Forming(packed)
        try:
            await asyncio.sleep(0)  # the tasks started with this one give theirs meanwhile
        except BaseException:
            if forming.done is not None:  # sent for the others all the same
                forming.skipped = len(packed)
                del forming.packed[: len(packed)]
                self._start_sending(node, forming)
            raise
        finally:
            del _forming[at]
        if forming.done is None:  # nobody joined
            await self._send(node, indices, packed, replies)
            return
        # In a task of its own: a caller cancelled meanwhile cancels no one else's batch.
        self._start_sending(node, forming)
        got = await asyncio.shield(forming.done)
        for k, i in enumerate(indices):
            replies[i] = got[k]

    def _start_sending(self, node: Any, forming: _Forming) -> None:
        task = asyncio.create_task(self._send_formed(node, forming))
        _sending.add(task)
        task.add_done_callback(_sending.discard)

    async def _send_formed(self, node: Any, forming: _Forming) -> None:
        assert forming.done is not None
        got: list[Any] = [FALLBACK] * len(forming.packed)
        try:
            await self._send(node, list(range(len(got))), forming.packed, got)
        except asyncio.CancelledError:
            forming.done.cancel()
            raise
        except Exception as exc:  # each caller raises it, as its own batch's
            forming.done.set_exception(exc)
        else:
            forming.done.set_result(got)

    @property
    def cluster(self) -> bool:
        return self._cluster

    def node(self, keys: Sequence[Any]) -> Any:
        """Where a command with `keys` goes, None where redis-py must decide (or every
        command goes through redis-py): the client's pool on a single Redis, the primary
        holding their slot on a cluster, or for NodeKeys the one holding all of them."""
        return self._node(keys) if self._usable else None

    def _node(self, keys: Sequence[Any]) -> Any:
        if not self._cluster:
            return self._client.connection_pool
        if not keys or self._client._initialize:
            return None
        slots = {key_slot(k if isinstance(k, bytes) else str(k).encode()) for k in keys}
        node_of = self._client.nodes_manager.get_node_from_slot
        try:
            if len(slots) == 1:  # most calls: no set of nodes (a node hashes in Python)
                return node_of(slots.pop())
            if not isinstance(keys, NodeKeys):
                return None
            nodes = {node_of(s) for s in slots}
        except rx.SlotNotCoveredError:
            return None
        return nodes.pop() if len(nodes) == 1 else None

    async def _send(
        self, node: Any, indices: list[int], packed: list[bytes], replies: list[Any]
    ) -> None:
        """Send one node's commands on one of its connections; fill in `replies`."""
        # As redis-py does: no free connection within the pool's timeout, or none to be
        # opened, is the caller's error at once (a second wait through redis-py would
        # only double the time to an answer).
        conn = await self._acquire(node)
        read = 0
        try:
            if not conn.is_connected:
                await conn.connect()
            if conn.health_check_interval:
                await conn.check_health()  # PINGs a connection idle past the interval
            parser = conn._parser
            deadline = self._deadlines.start(conn.socket_timeout)
            try:
                conn._writer.write(b"".join(packed))
                await conn._writer.drain()
                for i in indices:
                    reply = await parser.read_response(disable_decoding=False)
                    read += 1
                    replies[i] = FALLBACK if isinstance(reply, _NOT_RUN_HERE) else reply
            except asyncio.CancelledError:
                if deadline is not None and deadline.timed_out():
                    raise TimeoutError from None
                raise
            finally:
                self._deadlines.end(deadline)
            if conn.health_check_interval:
                next_check = asyncio.get_running_loop().time() + conn.health_check_interval
                conn.next_health_check = next_check
        except (TimeoutError, rx.TimeoutError):  # the batch's deadline, or connecting's
            await conn.disconnect(nowait=True)
            if self._cluster:
                # As redis-py's cluster client does after a timeout: the slot map is read
                # again before the next command (this path leaves commands to redis-py
                # until then), so a primary that hangs while its replica takes over is
                # not asked again and again.
                self._client._initialize = True
            raise rx.TimeoutError(f"Timeout reading from {conn.host}:{conn.port}") from None
        except (rx.ConnectionError, OSError):
            # A dead pooled connection, a node restarting or going away: what was read
            # stands, the rest is redis-py's (whose retry and slot-map refresh apply).
            await conn.disconnect(nowait=True)
            for i in indices[read:]:
                replies[i] = FALLBACK
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        finally:
            await self._release(node, conn)

    async def _acquire(self, node: Any) -> Any:
        if self._cluster:
            return node.acquire_connection()
        if self._kept:
            return self._kept.pop()
        return await node.get_connection()

    async def _release(self, node: Any, conn: Any) -> None:
        if self._cluster:
            node.release(conn)
        elif conn.is_connected and len(self._kept) < self._keep:
            self._kept.append(conn)  # the next batch's, without the pool's round of checks
        else:
            await node.release(conn)


class _Deadline:
    __slots__ = ("task", "at", "cancelling", "expired")

    def __init__(self, task: asyncio.Task[Any], at: float) -> None:
        self.task, self.at, self.cancelling, self.expired = task, at, task.cancelling(), False

    def timed_out(self) -> bool:
        """Its task was cancelled by this deadline (and by nothing else): as asyncio.timeout
        tells its own expiry from another cancellation."""
        return self.expired and self.task.uncancel() <= self.cancelling


class _Deadlines:
    """The batches' deadlines (the client's socket timeout from the write to the last
    reply, as asyncio.timeout(socket_timeout) around them), kept by one timer for all the
    batches in flight: asyncio.timeout makes a timer of the loop's and an async context
    manager for every batch (on uvloop about 15 thousand instructions, as much as packing
    and reading a small batch). The timer runs at the earliest deadline there may be;
    whatever is due then has its task cancelled, told apart from other cancellations as
    asyncio.timeout tells them (Task.uncancel), and ends in TimeoutError."""

    def __init__(self) -> None:
        self._pending: set[_Deadline] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def start(self, seconds: float | None) -> _Deadline | None:
        if seconds is None:
            return None
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        deadline = _Deadline(task, loop.time() + seconds)
        self._pending.add(deadline)
        if self._timer is None or deadline.at < self._timer_at:
            self._schedule(loop, deadline.at)
        return deadline

    def end(self, deadline: _Deadline | None) -> None:
        if deadline is not None:
            self._pending.discard(deadline)

    def _schedule(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(at, self._expire, loop), at

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        for deadline in [d for d in self._pending if d.at <= now]:
            self._pending.discard(deadline)
            if not deadline.task.done():
                deadline.expired = True
                deadline.task.cancel()
        if self._pending:
            self._schedule(loop, min(d.at for d in self._pending))


def _retrieved(done: asyncio.Future[list[Any]]) -> None:
    """Every caller of a joined batch may have been cancelled: its error is not logged as
    never retrieved."""
    if not done.cancelled():
        done.exception()
