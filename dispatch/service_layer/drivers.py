"""Driver use cases: position fixes (one or a fleet batch), status, and the driver's view."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from dispatch.domain.drivers import DriverRecord, DriverStatus
from dispatch.domain.principals import Principal, Role
from dispatch.domain.products import Vehicle
from dispatch.domain.rides import TERMINAL, Ride, RideStatus
from dispatch.service_layer.airport import on_status, track_fix, track_fixes
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.errors import Forbidden, InvalidRequest, NotFound
from dispatch.service_layer.reservations import release_driver
from geoindex import DriverState, Position, UpsertResult

# A fix stamped further ahead than this is refused: it would shadow every real fix that
# follows it until the clock catches up (updates with an older ts are stale).
MAX_FUTURE_MS = 5 * 60_000


class Fix(NamedTuple):
    """One driver's position fix as the service's edge decoded it (schemas.fix_of, from
    the contract's Location): finite lat and lng in range, ts_ms and seq integers in
    [0, 2**53). The index takes it as it is (GeoIndex.upsert_valid), for the driver
    whose id the edge checked too (a path's id, a token's subject). A named tuple: one
    is made for every fix, in 0.6 of a frozen dataclass's time."""

    lat: float
    lng: float
    ts_ms: int
    seq: int


def authorize_driver(actor: Principal, driver_id: str) -> None:
    if actor.role is not Role.DRIVER or actor.id != driver_id:
        raise Forbidden("a driver token acts only for its own driver")


def check_not_future_ms(now_ms: int, ts_ms: int) -> None:
    if ts_ms > now_ms + MAX_FUTURE_MS:
        raise InvalidRequest("ts is more than 5 minutes in the future")


def authorize_fleet(actor: Principal) -> None:
    if actor.role is not Role.FLEET:
        raise Forbidden("only a fleet token may post location batches")


@dataclass(frozen=True, slots=True)
class FixOutcome:
    result: UpsertResult
    # When stale: the fix it lost to, so the app can resync without another call (None
    # if that one expired meanwhile). Only the stale path pays for reading it.
    stored: DriverState | None = None


ACCEPTED = FixOutcome(UpsertResult.ACCEPTED)  # every accepted fix's outcome: one object


async def update_location(deps: Deps, actor: Principal, driver_id: str, fix: Fix) -> FixOutcome:
    authorize_driver(actor, driver_id)
    check_not_future_ms(deps.clock.now_ms(), fix.ts_ms)
    return await _store(deps, driver_id, fix, 1, 1)


async def update_location_burst(
    deps: Deps, actor: Principal, driver_id: str, fixes: Sequence[Fix]
) -> tuple[Fix, FixOutcome]:
    """Fixes an app buffered while offline, in the order it took them (one WebSocket
    frame): each checked as a single fix is, then only the newest goes to the index.
    Taken one by one, each fix that is not newer (ts and seq) than the last one taken
    would be stale; the last one taken would overwrite all the others. Nothing reads a
    driver's earlier positions (search, ETAs and areas use the current one), so the
    others are counted and dropped. (the fix written, its outcome)"""
    authorize_driver(actor, driver_id)
    latest = deps.clock.now_ms() + MAX_FUTURE_MS
    for i, fix in enumerate(fixes):
        if fix.ts_ms > latest:
            raise InvalidRequest(f"fixes/{i}: ts is more than 5 minutes in the future")
    newest, taken = fixes[0], 1
    for fix in fixes[1:]:
        if fix.ts_ms > newest.ts_ms and fix.seq > newest.seq:
            newest, taken = fix, taken + 1
    return newest, await _store(deps, driver_id, newest, len(fixes), taken)


async def _store(deps: Deps, driver_id: str, fix: Fix, count: int, taken: int) -> FixOutcome:
    """`fix` into the index: the newest of `count` fixes, `taken` of them in order (the
    others counted stale, as all are if the index finds it stale)."""
    position = Position(driver_id, fix.lat, fix.lng, fix.ts_ms, fix.seq)
    [result] = await deps.index.upsert_valid([position])  # checked at the edge (Fix)
    if result is UpsertResult.ACCEPTED:
        deps.observer.locations(taken, count - taken)
        if not deps.fences.idle():  # no areas: no clock read, no call (most fixes' case)
            await track_fix(deps, driver_id, fix.lat, fix.lng)  # areas entered or left
        return ACCEPTED
    deps.observer.locations(0, count)
    return FixOutcome(result, await deps.index.get(driver_id))


async def update_locations(
    deps: Deps, actor: Principal, positions: Sequence[Position]
) -> list[UpsertResult]:
    """A fleet gateway's batch, already validated item by item; one index call."""
    authorize_fleet(actor)
    if not positions:
        return []
    results = await deps.index.upsert(positions)
    accepted = sum(r is UpsertResult.ACCEPTED for r in results)
    deps.observer.locations(accepted, len(results) - accepted)
    await track_fixes(deps, positions, results)  # areas entered or left
    return results


async def set_status(
    deps: Deps,
    actor: Principal,
    driver_id: str,
    status: DriverStatus,
    vehicle: Vehicle | None = None,
) -> tuple[DriverRecord, DriverState | None]:
    """`vehicle`: the driver's car from now on (its products), set once the status
    change is allowed and before the driver becomes available with it."""
    authorize_driver(actor, driver_id)
    await _release_if_its_ride_is_over(deps, driver_id)
    rec = await deps.drivers.set_status(driver_id, status, deps.clock.now_ms())
    if vehicle is not None:
        await deps.index.set_products(driver_id, vehicle.products)
    await deps.index.set_available(driver_id, status is DriverStatus.AVAILABLE)
    await on_status(deps, driver_id, status)  # airport queues: in when available, out offline
    return rec, await deps.index.get(driver_id)


async def _release_if_its_ride_is_over(deps: Deps, driver_id: str) -> None:
    """A Redis failover can lose the release that ends a ride (replication is
    asynchronous): the driver's key then says on_ride for a ride that is over, or gone,
    and nothing would ever free it. The ride is the witness."""
    rec = await deps.drivers.get(driver_id)
    if rec.status is not DriverStatus.ON_RIDE or rec.ride_id is None:
        return
    ride = await deps.rides.get(rec.ride_id)
    if ride is not None and ride.status not in TERMINAL:
        if (ride.driver_id, ride.fence) == (driver_id, rec.fence):
            return  # on that ride indeed
    await release_driver(deps, driver_id, rec.ride_id, rec.fence)


async def get_driver(
    deps: Deps, actor: Principal, driver_id: str
) -> tuple[DriverRecord, DriverState | None]:
    """NotFound for a driver nothing is known of: no stored fix, and a record as a driver
    never seen has (available, no ride, never reserved). So a mistyped id is not mistaken
    for a real driver that is available."""
    authorize_driver(actor, driver_id)
    rec, state = await deps.drivers.get(driver_id), await deps.index.get(driver_id)
    if state is None and rec == DriverRecord(driver_id):
        raise NotFound(f"nothing is known of driver {driver_id}")
    return rec, state


async def pending_offer(deps: Deps, driver_id: str) -> Ride | None:
    """The offer this driver still holds, if any: sent again when its WebSocket reconnects."""
    rec = await deps.drivers.get(driver_id)
    if rec.status is not DriverStatus.RESERVED or rec.ride_id is None:
        return None
    ride = await deps.rides.get(rec.ride_id)
    if ride is None or ride.status is not RideStatus.OFFERED:
        return None
    if ride.driver_id != driver_id or ride.fence != rec.fence:
        return None
    if ride.offer_expires_at is None or ride.offer_expires_at <= deps.clock.now_ms():
        return None
    return ride
