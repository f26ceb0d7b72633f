"""Every instance keeps its compiled areas fresh: one version read per interval."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from dispatch.entrypoints import appkeys, background
from dispatch.service_layer.areas import run_refresher


async def area_refresher(app: web.Application) -> AsyncIterator[None]:
    deps, settings = app[appkeys.RUNTIME].deps, app[appkeys.SETTINGS]
    async with background.running(
        ("area-refresher", run_refresher(deps.areas, settings.areas_refresh_s))
    ):
        yield
