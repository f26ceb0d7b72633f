"""The ride's life after the offer: accept, decline, arrived, start, complete, cancel, read."""

from __future__ import annotations

from collections.abc import Callable

from dispatch.domain import rides
from dispatch.domain.errors import InvalidTransition
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import Ride, RideChange, RideStatus
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.effects import settle
from dispatch.service_layer.errors import Contended, Forbidden, NotFound
from dispatch.service_layer.offers import offer_to_next
from dispatch.service_layer.reservations import release_driver

MAX_RETRIES = 8  # compare-and-set retries when other steps change the ride meanwhile


async def load(deps: Deps, ride_id: str) -> Ride:
    ride = await deps.rides.get(ride_id)
    if ride is None:
        raise NotFound(f"no ride {ride_id}")
    return ride


def _driver(actor: Principal) -> str:
    if actor.role is not Role.DRIVER:
        raise Forbidden("only the ride's driver may do this")
    return actor.id


async def get_ride(deps: Deps, actor: Principal, ride_id: str) -> Ride:
    ride = await load(deps, ride_id)
    if actor.role is Role.RIDER and actor.id == ride.rider_id:
        return ride
    if actor.role is Role.DRIVER and actor.id == ride.driver_id:
        return ride
    raise Forbidden("only the ride's rider or driver may see it")


async def accept(deps: Deps, actor: Principal, ride_id: str) -> Ride:
    driver_id = _driver(actor)
    ride = await load(deps, ride_id)
    new = rides.accept(ride, driver_id, deps.clock.now_ms())
    assert ride.fence is not None
    # The driver's record is the gate: only the holder of the current token gets through.
    if not await deps.drivers.confirm(driver_id, ride.id, ride.fence, deps.clock.now_ms()):
        raise InvalidTransition("the offer is no longer held for you")
    if not await deps.rides.replace(new):
        current = await load(deps, ride_id)
        if current.status is RideStatus.ACCEPTED and current.fence == ride.fence:
            return current  # the same driver accepted twice at once
        await release_driver(deps, driver_id, ride.id, ride.fence)
        raise InvalidTransition(f"the ride changed meanwhile; it is {current.status.value}")
    await settle(deps, RideChange(ride, new))
    return new


async def decline(deps: Deps, actor: Principal, ride_id: str) -> Ride:
    driver_id = _driver(actor)
    for _ in range(MAX_RETRIES):
        ride = await load(deps, ride_id)
        rides.check_decline(ride, driver_id)
        new = await offer_to_next(deps, ride)
        if new is not None:
            return new
    raise Contended("the ride kept changing; try again")


async def _advance(deps: Deps, ride_id: str, step: Callable[[Ride, int], Ride]) -> Ride:
    for _ in range(MAX_RETRIES):
        ride = await load(deps, ride_id)
        new = step(ride, deps.clock.now_ms())
        if not await deps.rides.replace(new):
            continue
        await settle(deps, RideChange(ride, new))  # an ended ride frees its driver
        return new
    raise Contended("the ride kept changing; try again")


async def arrive(deps: Deps, actor: Principal, ride_id: str) -> Ride:
    driver_id = _driver(actor)
    return await _advance(deps, ride_id, lambda r, now: rides.arrive(r, driver_id, now))


async def start(deps: Deps, actor: Principal, ride_id: str) -> Ride:
    driver_id = _driver(actor)
    return await _advance(deps, ride_id, lambda r, now: rides.start(r, driver_id, now))


async def complete(deps: Deps, actor: Principal, ride_id: str) -> Ride:
    driver_id = _driver(actor)
    return await _advance(deps, ride_id, lambda r, now: rides.complete(r, driver_id, now))


async def cancel(deps: Deps, actor: Principal, ride_id: str) -> Ride:
    rider: str | None = actor.id if actor.role is Role.RIDER else None
    driver: str | None = actor.id if actor.role is Role.DRIVER else None
    if rider is None and driver is None:
        raise Forbidden("only the ride's rider or driver may cancel it")
    return await _advance(deps, ride_id, lambda r, now: rides.cancel(r, rider, driver, now))
