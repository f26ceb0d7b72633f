"""The Redis edge, for the index and for anyone storing next to it: Lua scripts run by SHA
in one round trip per node (Redis or Redis Cluster; geoindex.redis_pipeline, with
redis-py's own path for what that leaves to it), and the one translation of "Redis could
not answer" into BackendUnavailable.

Every call into redis-py belongs inside `translated()` (the ScriptRunner applies it
itself); keep the block to the call alone, so that an error of our own code around it is
never mistaken for an outage.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from redis import exceptions as rx

from geoindex.errors import BackendUnavailable
from geoindex.redis_pipeline import FALLBACK, NodeKeys, Pipelined

Call = tuple["Script", Sequence[Any], Sequence[Any]]  # script, keys, args


class _NotRun:
    def __repr__(self) -> str:
        return "NOT_RUN"


# In a node call's reply's place (keys given as NodeKeys): it did not run whole, or not at
# all; its caller sends what it carried again, one call a slot.
NOT_RUN: Any = _NotRun()

# Errors that mean "Redis could not answer" (down, timeout, failover in progress), as
# opposed to a bug in a script or a call, which stays what it is.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    rx.ConnectionError,  # also BusyLoadingError (a restarted node still loading)
    rx.TimeoutError,
    rx.ClusterError,  # also ClusterDownError, MasterDownError
    rx.TryAgainError,
    rx.ReadOnlyError,  # a demoted primary
    rx.SlotNotCoveredError,  # no node holds the slot yet, mid-failover
    OSError,  # also TimeoutError, which asyncio's is
)

# When a failover begins, redis-py's cluster client closes every connection, under
# commands still using them; those fail with whatever the closed connection raises:
# AttributeError on its dropped writer, RuntimeError from uvloop's closed transport.
# Raised inside a redis call, they are the outage all the same.
CLOSED_UNDER_THE_CALL: tuple[type[BaseException], ...] = (AttributeError, RuntimeError)


@contextmanager
def translated() -> Iterator[None]:
    """Wrap one call into redis-py: an outage becomes BackendUnavailable."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise BackendUnavailable(f"redis unavailable: {exc!r}") from exc
    except CLOSED_UNDER_THE_CALL as exc:
        raise BackendUnavailable(f"redis connection closed under the call: {exc!r}") from exc
    except rx.ResponseError as exc:
        # A script touching a key it did not declare while its slot migrates and that
        # key has already moved: the migration's TRYAGAIN, told mid-script. Only the
        # sweep (region_expire.lua's product sets) still can; region_apply.lua declares
        # its product sets and refuses before writing. What the sweep removed before
        # stays removed; the next sweep finishes the driver (k-NN skips stale entries).
        if "non local key" in str(exc):
            raise BackendUnavailable(f"redis slot migrating: {exc!r}") from exc
        raise


class Script:
    """One Lua script: `Script("knn")` from geoindex's own lua directory,
    `Script("driver_reserve", package="dispatch.adapters.lua")` from another package's,
    or `Script.from_path(path)`. Equal scripts (same source) compare equal."""

    def __init__(self, name: str, *, package: str = "geoindex.lua") -> None:
        self._init(name, resources.files(package).joinpath(f"{name}.lua").read_text())

    @classmethod
    def from_path(cls, path: Path) -> Script:
        script = cls.__new__(cls)
        script._init(path.stem, path.read_text())
        return script

    @classmethod
    def from_source(cls, name: str, source: str) -> Script:
        """A script put together by its caller (for one composed of others' sources)."""
        script = cls.__new__(cls)
        script._init(name, source)
        return script

    def _init(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Script) and other.sha == self.sha

    def __hash__(self) -> int:
        return hash(self.sha)

    def __repr__(self) -> str:
        return f"Script({self.name!r}, sha={self.sha[:8]})"


class ScriptRunner:
    """Runs script calls in one round trip per node, loading scripts first.

    The calls go out packed and read in one batch per node (geoindex.redis_pipeline);
    the ones that path leaves to redis-py (redirected, refused during a failover, a
    missing script, a connection that broke before their replies) go through redis-py's
    pipeline, which follows redirections and refreshes the slot map.

    Scripts are loaded before the first call (or by `load()`, at start-up): on a cluster,
    redis-py's async client answers a burst of concurrent NOSCRIPT errors by dropping
    connections other calls are using. A node that restarted or was promoted may still
    lack them: NOSCRIPT makes us load them everywhere (once, however many calls hit it
    together) and retry once. Every failure to reach Redis is BackendUnavailable.
    """

    def __init__(self, client: Any, scripts: Iterable[Script] = ()) -> None:
        self.client = client
        self._pipelined = Pipelined(client)
        self._scripts = set(scripts)
        self._loading = asyncio.Lock()
        self._loaded = False

    async def load(self) -> None:
        """SCRIPT LOAD every known script that is missing (on a cluster: on every primary;
        replicas get them by replication)."""
        with translated():
            await self._load(self._scripts)
        self._loaded = True

    @property
    def cluster(self) -> bool:
        return self._pipelined.cluster

    def node(self, key: Any) -> Any:
        """The node holding `key`, as the batch path knows it (on a single Redis, one for
        every key); None if it does not (then only redis-py can send a call on it)."""
        return self._pipelined.node([key])

    async def call(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return (await self.run([(script, keys, args)]))[0]

    async def run(self, calls: Sequence[Call]) -> list[Any]:
        """The calls' replies, in order. A call whose keys are NodeKeys (keys of several
        slots of one node) declares none to its script and goes to the node holding them;
        where it did not run, for whatever reason (a redirection, a key its script found not
        local, any error), its reply is NOT_RUN: its script must leave each part it
        carries written whole or not at all, and its caller sends its parts again, a call
        each, where a part written twice holds what it held (region_apply.lua)."""
        if not calls:
            return []
        self._scripts.update(c[0] for c in calls)
        if not self._loaded:
            await self.load()
        commands = [
            ("EVALSHA", s.sha, 0, *args)
            if isinstance(keys, NodeKeys)
            else ("EVALSHA", s.sha, len(keys), *keys, *args)
            for s, keys, args in calls
        ]
        with translated():
            replies = await self._pipelined.run(commands, [keys for _, keys, _ in calls])
        for i, (_, keys, _) in enumerate(calls):
            if isinstance(keys, NodeKeys) and (
                replies[i] is FALLBACK or isinstance(replies[i], Exception)
            ):
                replies[i] = NOT_RUN
        redo = [i for i, reply in enumerate(replies) if reply is FALLBACK]
        if redo:
            with translated():
                again = await self._through_redis_py([calls[i] for i in redo])
            for i, reply in zip(redo, again, strict=True):
                replies[i] = reply
        error = next((r for r in replies if isinstance(r, Exception)), None)
        if error is not None:
            with translated():  # an error reply stays itself, unless it is an outage
                raise error
        return replies

    async def command(self, key: Any, *command: Any) -> Any:
        """One plain command whose keys share `key`'s slot: commands()."""
        return (await self.commands([(key, command)]))[0]

    async def commands(self, commands: Sequence[tuple[Any, tuple[Any, ...]]]) -> list[Any]:
        """Plain commands, each given as (a key routing it, the command), through the same
        batch path as the scripts (one round trip per node, in order on each, without
        redis-py's per-command work); redis-py sends, in order, what that path leaves to
        it (a redirection, a broken connection). Replies are the server's, with none of
        redis-py's reply callbacks: for commands answering numbers, strings or lists of
        them. The first error reply is raised."""
        if not commands:
            return []
        with translated():
            replies = await self._pipelined.run(
                [c for _, c in commands], [[key] for key, _ in commands]
            )
            redo = [i for i, reply in enumerate(replies) if reply is FALLBACK]
            if redo:
                pipe = self.client.pipeline(transaction=False)
                for i in redo:
                    pipe.execute_command(*commands[i][1])
                again = await pipe.execute(raise_on_error=False)
                for i, reply in zip(redo, again, strict=True):
                    replies[i] = reply
            error = next((r for r in replies if isinstance(r, Exception)), None)
            if error is not None:
                raise error
        return replies

    async def _through_redis_py(self, calls: Sequence[Call]) -> list[Any]:
        try:
            return await _run(self.client, calls)
        except rx.NoScriptError:
            await self._load({c[0] for c in calls})
            return await _run(self.client, calls)

    async def _load(self, scripts: set[Script]) -> None:
        async with self._loading:
            missing = [
                s for s in scripts if not all(_flatten(await self.client.script_exists(s.sha)))
            ]
            for s in missing:
                await self.client.script_load(s.source)


async def _run(client: Any, calls: Sequence[Call]) -> list[Any]:
    if len(calls) == 1:
        script, keys, args = calls[0]
        return [await client.evalsha(script.sha, len(keys), *keys, *args)]
    pipe = client.pipeline(transaction=False)
    for script, keys, args in calls:
        # execute_command: redis-py blocks the evalsha() method on cluster pipelines only by
        # name; the async cluster client routes EVALSHA by its keys like any command.
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    results: list[Any] = await pipe.execute(raise_on_error=False)
    for r in results:
        if isinstance(r, Exception):
            raise r
    return results


def _flatten(reply: Any) -> list[bool]:
    """SCRIPT EXISTS answers a list, or on a cluster a list per node."""
    if isinstance(reply, dict):
        return [bool(x) for v in reply.values() for x in v]
    return [bool(x) for x in reply]
