"""Batched matching's window job as an app resource: started with the backend when
DISPATCH_MATCH_WINDOW_MS > 0, cancelled (giving its leases up, so another instance
takes the regions over at once) when the app shuts down."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from dispatch.entrypoints import appkeys, background
from dispatch.service_layer.batching import run_window_job


async def window_job(app: web.Application) -> AsyncIterator[None]:
    deps, settings = app[appkeys.RUNTIME].deps, app[appkeys.SETTINGS]
    if deps.batching is None:
        yield  # immediate matching: nothing to solve
        return
    # Unique per process: two instances configured with one id must not share a lease.
    holder = f"{settings.instance}/{uuid.uuid4().hex[:8]}"
    async with background.running(("matching-window-job", run_window_job(deps, holder))):
        yield
