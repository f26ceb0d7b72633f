"""Batched matching's window job as an app resource: started with the backend when
DISPATCH_MATCH_WINDOW_MS > 0, cancelled (giving its leases up, so another instance
takes the regions over at once) when the app shuts down."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from dispatch.entrypoints import appkeys
from dispatch.service_layer.batching import run_window_job

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0


async def window_job(app: web.Application) -> AsyncIterator[None]:
    deps, settings = app[appkeys.RUNTIME].deps, app[appkeys.SETTINGS]
    if deps.batching is None:
        yield  # immediate matching: nothing to solve
        return
    # Unique per process: two instances configured with one id must not share a lease.
    holder = f"{settings.instance}/{uuid.uuid4().hex[:8]}"
    task = asyncio.create_task(run_window_job(deps, holder))
    yield
    task.cancel()
    # Bounded: a cancel swallowed deep in a Redis client call must not hold the shutdown
    # (the leases then lapse by themselves).
    done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
    if not done:
        log.warning("the matching window job did not stop within %s s", STOP_TIMEOUT_S)
    elif not task.cancelled() and task.exception() is not None:
        log.error("the matching window job failed", exc_info=task.exception())
