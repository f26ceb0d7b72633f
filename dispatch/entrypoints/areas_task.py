"""Every instance keeps its compiled areas fresh: one version read per interval."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from dispatch.entrypoints import appkeys
from dispatch.service_layer.areas import run_refresher


async def area_refresher(app: web.Application) -> AsyncIterator[None]:
    deps, settings = app[appkeys.RUNTIME].deps, app[appkeys.SETTINGS]
    task = asyncio.create_task(run_refresher(deps.areas, settings.areas_refresh_s))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
