"""Lua scripts of the Redis backend, run by SHA through pipelines on Redis or Redis Cluster."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis import exceptions as rx

from geoindex.errors import BackendUnavailable

Call = tuple["Script", Sequence[str], Sequence[Any]]

# Errors that mean "Redis could not answer", as opposed to a bug in a script or a call.
UNAVAILABLE = (rx.ConnectionError, rx.TimeoutError, rx.ClusterDownError, rx.TryAgainError,
               rx.BusyLoadingError, rx.ReadOnlyError, rx.MasterDownError)


class Script:
    def __init__(self, name: str) -> None:
        self.name = name
        self.source = resources.files("geoindex.lua").joinpath(f"{name}.lua").read_text()
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()


async def run(client: Any, calls: Sequence[Call]) -> list[Any]:
    """Run calls in one pipeline (one round trip per node), loading scripts on demand.

    A node that restarted or was promoted may not have the scripts yet: NOSCRIPT makes
    us load them everywhere and retry once.
    """
    try:
        try:
            return await _run(client, calls)
        except rx.NoScriptError:
            await load(client, {c[0] for c in calls})
            return await _run(client, calls)
    except UNAVAILABLE as e:
        raise BackendUnavailable(f"redis unavailable: {e}") from e


async def _run(client: Any, calls: Sequence[Call]) -> list[Any]:
    if len(calls) == 1:
        script, keys, args = calls[0]
        return [await client.evalsha(script.sha, len(keys), *keys, *args)]
    pipe = client.pipeline(transaction=False)
    for script, keys, args in calls:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    results: list[Any] = await pipe.execute(raise_on_error=False)
    for r in results:
        if isinstance(r, Exception):
            raise r
    return results


async def load(client: Any, scripts: set[Script]) -> None:
    # On a cluster SCRIPT LOAD goes to every primary; replicas get it by replication.
    for s in scripts:
        await client.script_load(s.source)
