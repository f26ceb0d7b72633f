"""Shared timers: offer timeouts and reservation leases, fired by whichever instance
claims them first. Every handler is idempotent: an item may fire twice."""

from __future__ import annotations

import asyncio
import logging

from dispatch.domain import rides
from dispatch.domain.rides import RideStatus
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.errors import BackendUnavailable
from dispatch.service_layer.offers import pass_on

log = logging.getLogger(__name__)

CLAIM_RETRY_MS = 5_000  # a claimed item whose handler died comes back after this
CLAIM_BATCH = 64


async def expire_offer(deps: Deps, ride_id: str) -> int | None:
    """Pass the ride on if its offer ran out; returns when to look again, if ever."""
    for _ in range(4):
        ride = await deps.rides.get(ride_id)
        if ride is None or ride.status is not RideStatus.OFFERED:
            return None
        if not rides.offer_expired(ride, deps.clock.now_ms()):
            return ride.offer_expires_at
        if await pass_on(deps, ride) is not None:
            return None
    return deps.clock.now_ms() + 200  # the ride kept changing: look again shortly


async def expire_lease(deps: Deps, driver_id: str) -> None:
    if await deps.drivers.expire_lease(driver_id, deps.clock.now_ms()):
        await deps.index.set_available(driver_id, True)


async def handle(deps: Deps, item: str) -> int | None:
    kind, _, ident = item.partition(":")
    if kind == "r":
        return await expire_offer(deps, ident)
    if kind == "l":
        await expire_lease(deps, ident)
        return None
    log.warning("dropping unknown timer item %r", item)
    return None


async def sweep_once(deps: Deps) -> int:
    """Claim the due items and handle them; returns how many were claimed."""
    claimed = await deps.deadlines.claim(deps.clock.now_ms(), CLAIM_BATCH, CLAIM_RETRY_MS)
    for c in claimed:
        try:
            again = await handle(deps, c.item)
        except BackendUnavailable:
            raise
        except Exception:
            # Left claimed: it comes back after CLAIM_RETRY_MS.
            log.exception("timer %s failed", c.item)
            continue
        if again is None:
            await deps.deadlines.done(c)
        else:
            await deps.deadlines.schedule(c.item, again)
    return len(claimed)


async def run_sweeper(deps: Deps, interval_s: float) -> None:
    """Poll for due timers until cancelled."""
    task = asyncio.current_task()
    while True:
        try:
            busy = await sweep_once(deps) == CLAIM_BATCH
        except BackendUnavailable as exc:
            log.warning("timer sweep skipped: %s", exc)
            busy = False
        # A cancel that a Redis read timeout swallowed must still stop the loop.
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        if not busy:
            await asyncio.sleep(interval_s)
