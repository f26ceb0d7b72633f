"""The instance's background loops (timer sweeps, surge, matching windows, the ops feed,
area upkeep) as app resources: started with the backend, stopped at shutdown within a
bound.

A cancel can be swallowed: redis-py catches it in a read that times out at the same
moment, and the loop goes on. So a loop is cancelled again until it ends, and a loop
that still does not end within the bound is left behind with a warning rather than
holding the shutdown (its leases then lapse by themselves)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

log = logging.getLogger(__name__)

STOP_WITHIN_S = 5.0
RECANCEL_EVERY_S = 0.1


@asynccontextmanager
async def running(*loops: tuple[str, Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    """Run each (name, loop) as a task while the block runs; stop them all after it."""
    tasks = [asyncio.create_task(coro, name=name) for name, coro in loops]
    try:
        yield
    finally:
        await asyncio.gather(*(stop(task) for task in tasks))


async def stop(task: asyncio.Task[None], within_s: float = STOP_WITHIN_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not task.done():
        if loop.time() >= deadline:
            log.warning("%s did not stop within %s s; left behind", task.get_name(), within_s)
            return
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_EVERY_S)
    if not task.cancelled() and task.exception() is not None:
        log.error("%s had failed", task.get_name(), exc_info=task.exception())
