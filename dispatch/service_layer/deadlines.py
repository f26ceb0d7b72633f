"""Shared timers: offer timeouts and reservation leases, fired by whichever instance
claims them first. Every handler is idempotent: an item may fire twice."""

from __future__ import annotations

import asyncio
import logging

from dispatch.domain import rides
from dispatch.domain.drivers import DriverRecord, DriverStatus
from dispatch.domain.rides import COMMITTED, Ride, RideChange, RideStatus
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.effects import settle
from dispatch.service_layer.errors import BackendUnavailable
from dispatch.service_layer.offers import offer_to_next
from dispatch.service_layer.ports import Claimed
from dispatch.service_layer.reservations import free_expired_lease
from dispatch.service_layer.timers import LeaseCheck, OfferTimeout, parse_timer

log = logging.getLogger(__name__)

CLAIM_RETRY_MS = 5_000  # a claimed item whose handler died comes back after this
CLAIM_BATCH = 64
HANDLED_AT_ONCE = 16


async def expire_offer(deps: Deps, ride_id: str) -> int | None:
    """Pass the ride on if its offer ran out; returns when to look again, if ever."""
    for _ in range(4):
        ride = await deps.rides.get(ride_id)
        if ride is None or ride.status is not RideStatus.OFFERED:
            return None
        if not rides.offer_expired(ride, deps.clock.now_ms()):
            return ride.offer_expires_at
        assert ride.driver_id is not None
        if lost_accept(ride, await deps.drivers.get(ride.driver_id)):
            if await restore_accept(deps, ride):
                return None
        elif await offer_to_next(deps, ride) is not None:
            return None
    return deps.clock.now_ms() + 200  # the ride kept changing: look again shortly


async def expire_lease(deps: Deps, driver_id: str) -> int | None:
    """Shortly before a reservation's lease runs out: repair a lost accept, or free an
    orphan once the lease is over. Returns when to look again, if ever.

    Accepting writes the driver's key, then the ride; they live on different masters, and
    a Redis failover can lose either write alone (replication is asynchronous):
    - the driver's key lost it: the key is back to reserved under a lease about to run
      out, after which anyone could reserve the driver: two rides for one driver. The
      ride is the witness: put the accept back on the driver's key first;
    - the ride lost it: it says offered, though the driver was told yes and is on the
      way. The driver's key is the witness: put the accept back on the ride (the offer's
      own timer does the same, should its cancel have been lost too)."""
    rec = await deps.drivers.get(driver_id)
    if rec.ride_id is None or rec.status not in (DriverStatus.RESERVED, DriverStatus.ON_RIDE):
        return None
    ride = await deps.rides.get(rec.ride_id)
    if rec.status is DriverStatus.ON_RIDE:
        if ride is not None and lost_accept(ride, rec) and not await restore_accept(deps, ride):
            return deps.clock.now_ms() + 200  # the ride changed meanwhile: look again
        return None
    if (
        ride is not None
        and ride.status in COMMITTED
        and (ride.driver_id, ride.fence) == (driver_id, rec.fence)
    ):
        # Accepting confirmed while the lease was alive, or the ride would not say so.
        await deps.drivers.confirm(driver_id, ride.id, rec.fence, rec.lease_until - 1)
        return None
    now = deps.clock.now_ms()
    if rec.lease_until > now:
        return rec.lease_until
    await free_expired_lease(deps, driver_id, now)
    return None


def lost_accept(ride: Ride, rec: DriverRecord) -> bool:
    """The ride still offers itself to the driver whose own record says it accepted it."""
    return (
        ride.status is RideStatus.OFFERED
        and rec.status is DriverStatus.ON_RIDE
        and (ride.driver_id, ride.fence) == (rec.driver_id, rec.fence)
        and rec.ride_id == ride.id
    )


async def restore_accept(deps: Deps, ride: Ride) -> bool:
    """False if the ride changed meanwhile (compare-and-set lost)."""
    new = rides.restore_accept(ride, deps.clock.now_ms())
    if not await deps.rides.replace(new):
        return False
    await settle(deps, RideChange(ride, new))
    return True


async def handle(deps: Deps, item: str) -> int | None:
    match parse_timer(item):
        case OfferTimeout(ride_id):
            return await expire_offer(deps, ride_id)
        case LeaseCheck(driver_id):
            return await expire_lease(deps, driver_id)
    log.warning("dropping unknown timer item %r", item)
    return None


async def sweep_once(deps: Deps) -> int:
    """Claim the due items and handle them, HANDLED_AT_ONCE at a time; returns how many
    were claimed. Handled one after the other, a claim of 64 on a loaded instance could
    outlast its own retry (each handler waits for Redis behind the instance's requests)
    and fire again before it was done. An item claimed from several shards (a driver's
    lease check, kept beside each of its rides' offer timers) is handled once: the first
    copy takes the outcome, the others are removed, so the copies do not pile up."""
    claimed = await deps.deadlines.claim(deps.clock.now_ms(), CLAIM_BATCH, CLAIM_RETRY_MS)
    copies: dict[str, list[Claimed]] = {}
    for c in claimed:
        copies.setdefault(c.item, []).append(c)
    gate = asyncio.Semaphore(HANDLED_AT_ONCE)

    async def settle_item(item: str, found: list[Claimed]) -> None:
        async with gate:
            try:
                again = await handle(deps, item)
            except BackendUnavailable:
                raise  # left claimed: it comes back after CLAIM_RETRY_MS
            except Exception:
                log.exception("timer %s failed", item)  # left claimed, as above
                return
            first, *others = found
            await asyncio.gather(
                deps.deadlines.done(first) if again is None else deps.deadlines.again(first, again),
                *(deps.deadlines.done(c) for c in others),
            )

    ended = await asyncio.gather(
        *(settle_item(item, found) for item, found in copies.items()), return_exceptions=True
    )
    for result in ended:  # every item had its turn; then the sweep reports a failure
        if isinstance(result, BaseException):
            raise result
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
        except Exception:
            # Anything else (redis-py failing a command with whatever a connection closed
            # under it raises, mid-failover) must not end the loop: no timer would fire
            # on this instance again.
            log.exception("timer sweep failed; sweeping on")
            busy = False
        # A cancel that a Redis read timeout swallowed must still stop the loop.
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        if not busy:
            await asyncio.sleep(interval_s)
