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
from geoindex.split import Layout, RegionSplitting, SplitConflict

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
    # Answer once the change's first phase is in the list, or once it has ended: done
    # (nothing to do), or failed before its change was recorded (which this request is
    # the only one to hear of: later failures are logged).
    while True:
        layout = await index.region_split()
        entry = layout.parents.get(cell)
        if (entry.res if entry is not None else layout.region_res) == res:
            return _answer(layout, status=202)
        if task.done():
            failure = task.result()
            if isinstance(failure, SplitConflict):
                raise SplitInProgress(str(failure)) from failure
            if failure is not None:
                raise failure  # BackendUnavailable: 503, nothing changed
            return _answer(layout, status=202)
        await asyncio.sleep(0.02)


async def _migrate(index: RegionSplitting, parent: str, res: int) -> Exception | None:
    """The change to its end; its failure, if any, is logged and returned."""
    try:
        layout = await index.split_region(parent, res)
    except Exception as exc:
        log.exception("region split of %s to res %d stopped; PUT it again to resume", parent, res)
        return exc
    log.info("region split: %s at res %d (list version %d)", parent, res, layout.version)
    return None


async def migrations(app: web.Application) -> AsyncIterator[None]:
    """The changes running on this instance; cancelled at shutdown (each resumable)."""
    app[appkeys.SPLITS] = {}
    yield
    for task in app[appkeys.SPLITS].values():
        task.cancel()
    for task in app[appkeys.SPLITS].values():
        with contextlib.suppress(asyncio.CancelledError):
            await task
