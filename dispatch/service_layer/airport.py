"""Airport queues: a driver available inside an airport area waits in its first-in-first-
out queue; a ride picked up inside the airport is offered to the head of the queue (through
the same atomic reservation and fencing token as any offer). A decline or a timed-out offer
sends the driver to the back; accepting takes it out; a rider's cancel after accepting
gives it the head back. Leaving the area (past its dwell), going offline or taking a ride
elsewhere takes a driver out. Every change of a queue's order goes to the area event log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from dispatch.domain.areas import AreaEvent, AreaKind, Crossing, QueueChange
from dispatch.domain.drivers import DriverStatus
from dispatch.domain.geo import LatLng, haversine_m
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import RideChange, RideStatus
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.errors import Forbidden, NotFound
from dispatch.service_layer.geofence import queue_change_json
from dispatch.service_layer.timers import LeaseCheck
from geoindex import Position, UpsertResult

log = logging.getLogger(__name__)

MAX_QUEUE = 1_000  # drivers in one airport queue
LEASE_CHECK_LEAD_MS = 5_000  # as reservations.find_offer schedules its lease check


async def _changed(deps: Deps, area_id: str, result: tuple[bool, list[str]]) -> None:
    changed, order = result
    if changed:
        change = QueueChange(area_id, tuple(order), deps.clock.now_ms())
        await deps.fences.log.append([queue_change_json(change)])


def airport_at(deps: Deps, at: LatLng) -> str | None:
    for c in deps.areas.holding(at.lat, at.lng):
        if c.area.kind is AreaKind.AIRPORT:
            return c.area.id
    return None


# -- who is queued --------------------------------------------------------------------------
async def on_crossings(deps: Deps, driver_id: str, events: list[AreaEvent]) -> None:
    """An available driver entering an airport joins its queue; leaving it, it leaves."""
    airports = deps.fences.airports_of(events)
    if not airports:
        return
    now = deps.clock.now_ms()
    for e in airports:
        if e.event is Crossing.EXIT:
            await _changed(deps, e.area_id, await deps.fences.queues.leave(e.area_id, driver_id))
        elif (await deps.drivers.get(driver_id)).status is DriverStatus.AVAILABLE:
            result = await deps.fences.queues.join(e.area_id, driver_id, now, MAX_QUEUE)
            await _changed(deps, e.area_id, result)


async def on_status(deps: Deps, driver_id: str, status: DriverStatus) -> None:
    """Offline: out of every queue. Available inside an airport: into its queue."""
    inside = await deps.fences.presence.areas_of(driver_id)
    now = deps.clock.now_ms()
    for area_id in sorted(inside):
        c = deps.areas.get(area_id)
        if c is None or c.area.kind is not AreaKind.AIRPORT:
            continue
        queues = deps.fences.queues
        if status is DriverStatus.AVAILABLE:
            await _changed(deps, area_id, await queues.join(area_id, driver_id, now, MAX_QUEUE))
        else:
            await _changed(deps, area_id, await queues.leave(area_id, driver_id))


# -- offers from the queue ------------------------------------------------------------------
async def queue_offer(
    deps: Deps,
    ride_id: str,
    pickup: LatLng,
    excluded: frozenset[str],
    now_ms: int,
    serves: tuple[str, ...] = (),
) -> tuple[str, int, float] | None:
    """(driver, fence, distance) of the queue's head reserved for the ride, if the pickup
    is in an airport whose queue has a reservable driver (serving one of `serves`, if
    given); None: search by distance."""
    area_id = airport_at(deps, pickup)
    if area_id is None:
        return None
    queues = deps.fences.queues
    for _ in range(MAX_QUEUE):
        driver_id = await queues.claim(area_id, ride_id, sorted(excluded))
        if driver_id is None:
            return None
        lease_until = now_ms + deps.lease_ms
        rec = await deps.drivers.reserve(driver_id, ride_id, now_ms, lease_until, serves)
        if rec is None:  # offline, stale or busy: not waiting any more
            await _changed(
                deps, area_id, await queues.settle(area_id, driver_id, ride_id, "gone", now_ms)
            )
            continue
        await deps.deadlines.schedule(LeaseCheck(driver_id).key, lease_until - LEASE_CHECK_LEAD_MS)
        await deps.index.set_available(driver_id, False)
        state = await deps.index.get(driver_id)
        distance = 0.0 if state is None else haversine_m(pickup, LatLng(state.lat, state.lng))
        return driver_id, rec.fence, distance
    return None


async def on_ride_change(deps: Deps, change: RideChange) -> None:
    """What a ride change does to the queues (called by effects.settle)."""
    before, after = change.before, change.after
    if before is None or before.driver_id is None:
        return
    area_id = airport_at(deps, after.pickup)
    driver_id, now = before.driver_id, deps.clock.now_ms()
    queues = deps.fences.queues
    if before.status is RideStatus.OFFERED and after.status is RideStatus.ACCEPTED:
        if area_id is not None:
            await _changed(
                deps, area_id, await queues.settle(area_id, driver_id, after.id, "served", now)
            )
        await _leave_all(deps, driver_id, keep=area_id)  # a ride elsewhere: out of queues
        return
    if area_id is None:
        return
    if before.status is RideStatus.OFFERED and (
        after.status is not RideStatus.OFFERED or after.driver_id != driver_id
    ):
        how = "keep" if after.status is RideStatus.CANCELLED else "back"
        await _changed(deps, area_id, await queues.settle(area_id, driver_id, after.id, how, now))
    elif after.status is RideStatus.CANCELLED and before.status in (
        RideStatus.ACCEPTED,
        RideStatus.ARRIVED,
    ):
        how = "restore" if after.cancelled_by == "rider" else "forget"
        await _changed(deps, area_id, await queues.settle(area_id, driver_id, after.id, how, now))
    elif after.status is RideStatus.COMPLETED:
        await queues.settle(area_id, driver_id, after.id, "forget", now)


async def _leave_all(deps: Deps, driver_id: str, keep: str | None) -> None:
    for area_id in sorted(await deps.fences.presence.areas_of(driver_id)):
        c = deps.areas.get(area_id)
        if area_id != keep and c is not None and c.area.kind is AreaKind.AIRPORT:
            await _changed(deps, area_id, await deps.fences.queues.leave(area_id, driver_id))


# -- reading a queue (ops) ------------------------------------------------------------------
async def queue_of(deps: Deps, actor: Principal, area_id: str) -> tuple[list[str], dict[str, str]]:
    """The queue head first, and the rides offered out of it (driver -> ride)."""
    if actor.role is not Role.OPS:
        raise Forbidden("airport queues are for ops tokens")
    await deps.areas.refresh()
    c = deps.areas.get(area_id)
    if c is None or c.area.kind is not AreaKind.AIRPORT:
        raise NotFound(f"no airport {area_id}")
    return await deps.fences.queues.order(area_id), await deps.fences.queues.held(area_id)


async def track_fix(deps: Deps, driver_id: str, lat: float, lng: float) -> None:
    """After an accepted fix: geofence events, and the airport queues they move. Best
    effort: the fix is stored whatever happens here."""
    try:
        events = await deps.fences.observe(driver_id, lat, lng, deps.clock.now_ms())
        if events:
            await on_crossings(deps, driver_id, events)
    except Exception as exc:  # noqa: BLE001 - never fail an accepted fix
        log.warning("geofence for %s skipped: %s", driver_id, exc)


async def on_silent(deps: Deps, driver_ids: Sequence[str]) -> None:
    """Drivers swept from the geo index (silent past the TTL) leave their areas and
    airport queues. A failure here is the sweep's (logged, and the next sweep goes on)."""
    exits = await deps.fences.forget(driver_ids, deps.clock.now_ms())
    for driver_id, events in exits.items():
        try:
            await on_crossings(deps, driver_id, events)
        except Exception as exc:  # noqa: BLE001 - the next driver still leaves
            log.warning("queues of silent driver %s not cleared: %s", driver_id, exc)


async def track_fixes(
    deps: Deps, positions: Sequence[Position], results: Sequence[UpsertResult]
) -> None:
    """A fleet batch's accepted fixes through the geofence at once (Geofence.observe_many),
    then the airport queues the crossings move. Best effort, as track_fix."""
    accepted: Sequence[Position] = positions
    if len(results) != len(positions) or results.count(UpsertResult.ACCEPTED) != len(results):
        ok = zip(positions, results, strict=True)  # most batches: all accepted, not this
        accepted = [p for p, r in ok if r is UpsertResult.ACCEPTED]
    try:
        crossed = await deps.fences.observe_many(accepted, deps.clock.now_ms())
    except Exception as exc:  # noqa: BLE001 - never fail accepted fixes
        log.warning("geofence for a batch of %d fixes skipped: %s", len(accepted), exc)
        return
    # Only crossings of an airport move a queue (on_crossings): no task for the others.
    fences = deps.fences
    jobs = [
        _queues_after(deps, driver_id, events)
        for driver_id, events in crossed.items()
        if fences.airports_of(events)
    ]
    for start in range(0, len(jobs), 64):
        await asyncio.gather(*jobs[start : start + 64])


async def _queues_after(deps: Deps, driver_id: str, events: list[AreaEvent]) -> None:
    try:
        await on_crossings(deps, driver_id, events)
    except Exception as exc:  # noqa: BLE001 - the other drivers' queues still move
        log.warning("queues of %s not moved: %s", driver_id, exc)
