"""Sweep drivers silent longer than the TTL out of the geo index.

Search never returns them anyway (the index filters by age); the sweep gives their memory
back, and takes them out of the areas they were in (exit events, airport queues). Every
instance runs it: expiring is idempotent, so overlap costs only a scan.
"""

from __future__ import annotations

import asyncio
import logging

from dispatch.service_layer.airport import on_silent
from dispatch.service_layer.deps import Deps
from geoindex import BackendUnavailable

log = logging.getLogger(__name__)


async def sweep_index_once(deps: Deps) -> list[str]:
    gone = await deps.index.expire(deps.clock.now_ms() - deps.index.ttl_ms)
    await on_silent(deps, gone)
    return gone


async def run_index_sweeper(deps: Deps, interval_s: float) -> None:
    """Expire silent drivers every `interval_s` until cancelled."""
    while True:
        try:
            gone = await sweep_index_once(deps)
            if gone:
                log.info("swept %d silent drivers from the index", len(gone))
        except BackendUnavailable as exc:
            log.warning("index sweep skipped: %s", exc)
        except Exception:
            log.exception("index sweep failed; sweeping on")  # the loop must outlive it
        await asyncio.sleep(interval_s)
