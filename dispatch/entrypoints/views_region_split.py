"""The geo index's split list for ops tokens: read it, and change one parent.

A change runs on this instance in the background (its two phases wait for every instance
to read them, longer than a request may take): the answer is 202 with the list as it
stands, and GET shows the parent migrating until it is done. If this instance stops
first, the parent stays in its phase, correct for every search; PUT again resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec
from aiohttp import web

from dispatch.domain.errors import DomainError
from dispatch.domain.principals import Role
from dispatch.entrypoints import appkeys, schemas
from dispatch.entrypoints import split_contract as sc
from dispatch.entrypoints.auth import principal
from dispatch.entrypoints.jsonio import json_response, read_body
from dispatch.service_layer.errors import Forbidden
from geoindex.split import Layout, RegionSplitting

log = logging.getLogger(__name__)
SPLIT_REQUEST = msgspec.json.Decoder(sc.SplitRequest)


class SplitInProgress(DomainError):
    code = "split_in_progress"


def _index(request: web.Request) -> RegionSplitting:
    if principal(request).role is not Role.OPS:
        raise Forbidden("the region split is for ops tokens")
    index = request.app[appkeys.RUNTIME].deps.index
    assert isinstance(index, RegionSplitting)
    return index


def _answer(layout: Layout, status: int = 200) -> web.Response:
    shown = msgspec.convert(layout.describe(), sc.RegionSplit)
    return json_response(shown, status=status)


async def get_region_split(request: web.Request) -> web.Response:
    return _answer(await _index(request).region_split())


async def put_region_split(request: web.Request) -> web.Response:
    index = _index(request)
    settings = request.app[appkeys.SETTINGS]
    body = schemas.parse(SPLIT_REQUEST, await read_body(request, settings.max_body_bytes))
    parent = request.match_info["parent"]
    layout = await index.region_split()
    cell, res = layout.check_change(parent, body.res)  # InvalidInput: 422, nothing changed
    entry = layout.parents.get(cell)
    if entry is not None and entry.prev is not None and entry.res != res:
        raise SplitInProgress(f"{parent} is migrating to resolution {entry.res}; finish that")
    running = request.app[appkeys.SPLITS]
    task = running.get(parent)
    if task is not None and not task.done():
        raise SplitInProgress(f"a change of {parent} is running on this instance")
    task = running[parent] = asyncio.create_task(_migrate(index, parent, res))
    # Answer once the change's first phase is in the list (or it has ended: nothing to do).
    while True:
        layout = await index.region_split()
        entry = layout.parents.get(cell)
        if task.done() or (entry.res if entry is not None else layout.region_res) == res:
            return _answer(layout, status=202)
        await asyncio.sleep(0.02)


async def _migrate(index: RegionSplitting, parent: str, res: int) -> None:
    try:
        layout = await index.split_region(parent, res)
        log.info("region split: %s at res %d (list version %d)", parent, res, layout.version)
    except Exception:
        log.exception("region split of %s to res %d stopped; PUT it again to resume", parent, res)


async def migrations(app: web.Application) -> AsyncIterator[None]:
    """The changes running on this instance; cancelled at shutdown (each resumable)."""
    app[appkeys.SPLITS] = {}
    yield
    for task in app[appkeys.SPLITS].values():
        task.cancel()
    for task in app[appkeys.SPLITS].values():
        with contextlib.suppress(asyncio.CancelledError):
            await task
