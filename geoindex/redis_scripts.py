"""Lua scripts of the Redis backend, run by SHA through pipelines on Redis or Redis Cluster."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis import exceptions as rx

from geoindex.errors import BackendUnavailable

Call = tuple["Script", Sequence[str], Sequence[Any]]

# Errors that mean "Redis could not answer", as opposed to a bug in a script or a call.
UNAVAILABLE = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.ClusterDownError,
    rx.TryAgainError,
    rx.BusyLoadingError,
    rx.ReadOnlyError,
    rx.MasterDownError,
)


class Script:
    def __init__(self, name: str) -> None:
        self.name = name
        self.source = resources.files("geoindex.lua").joinpath(f"{name}.lua").read_text()
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()


class ScriptRunner:
    """Runs calls in one pipeline (one round trip per node), loading scripts on demand.

    Scripts are loaded before the first call: on a cluster, redis-py's async client
    answers a burst of concurrent NOSCRIPT errors by dropping connections other calls
    are using. A node that restarted or was promoted may still lack them: NOSCRIPT makes
    us load them everywhere (once, however many calls hit it together) and retry once.
    """

    def __init__(self, client: Any, scripts: Sequence[Script]) -> None:
        self.client = client
        self._scripts = set(scripts)
        self._loading = asyncio.Lock()
        self._loaded = False

    async def run(self, calls: Sequence[Call]) -> list[Any]:
        try:
            if not self._loaded:
                await self._load(self._scripts)
                self._loaded = True
            try:
                return await _run(self.client, calls)
            except rx.NoScriptError:
                await self._load({c[0] for c in calls})
                return await _run(self.client, calls)
        except UNAVAILABLE as e:
            raise BackendUnavailable(f"redis unavailable: {e}") from e

    async def _load(self, scripts: set[Script]) -> None:
        async with self._loading:
            # On a cluster SCRIPT LOAD goes to every primary; replicas get it by replication.
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
