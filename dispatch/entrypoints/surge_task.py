"""The surge job as an app resource: started with the backend, cancelled (giving its
leases up, so another instance takes over at once) when the app shuts down."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from dispatch.entrypoints import appkeys
from dispatch.service_layer.surge_job import run_surge_job


async def surge_job(app: web.Application) -> AsyncIterator[None]:
    deps, settings = app[appkeys.RUNTIME].deps, app[appkeys.SETTINGS]
    # Unique per process: two instances configured with one id must not share a lease.
    holder = f"{settings.instance}/{uuid.uuid4().hex[:8]}"
    task = asyncio.create_task(run_surge_job(deps, holder))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
