"""The surge job as an app resource: started with the backend, cancelled (giving its
leases up, so another instance takes over at once) when the app shuts down."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from dispatch.entrypoints import appkeys, background
from dispatch.service_layer.surge_job import run_surge_job


async def surge_job(app: web.Application) -> AsyncIterator[None]:
    deps, settings = app[appkeys.RUNTIME].deps, app[appkeys.SETTINGS]
    # Unique per process: two instances configured with one id must not share a lease.
    holder = f"{settings.instance}/{uuid.uuid4().hex[:8]}"
    async with background.running(("surge-job", run_surge_job(deps, holder))):
        yield
