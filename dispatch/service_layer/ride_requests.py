"""Request a ride: find and reserve the nearest driver, store the ride, offer it."""

from __future__ import annotations

import hashlib
import uuid

from dispatch.domain import rides
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import Ride
from dispatch.service_layer.changes import ride_changed
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.errors import Forbidden
from dispatch.service_layer.matching import find_offer, release_driver, ride_item
from dispatch.service_layer.rider_rides import count_ride, uncount_briefly


def new_ride_id(rider_id: str, idempotency_key: str | None) -> str:
    """Random, or derived from the rider and the Idempotency-Key: then a retry after a
    crash finds the ride the first attempt stored instead of making a second one."""
    if idempotency_key is None:
        return "r_" + uuid.uuid4().hex
    digest = hashlib.sha256(f"{rider_id}\0{idempotency_key}".encode()).hexdigest()
    return "r_" + digest[:32]


async def request_ride(
    deps: Deps, actor: Principal, ride_id: str, pickup: LatLng, dropoff: LatLng | None
) -> Ride:
    if actor.role is not Role.RIDER:
        raise Forbidden("only a rider token may request a ride")
    existing = await deps.rides.get(ride_id)
    if existing is not None:
        if existing.rider_id != actor.id:
            raise Forbidden("this ride is not yours")
        return existing
    now = deps.clock.now_ms()
    await count_ride(deps, actor.id, ride_id, now)
    try:
        # The timer goes in first: should we die after storing the ride, it still fires.
        await deps.deadlines.schedule(ride_item(ride_id), now + deps.policy.offer_timeout_ms)
        offer = await find_offer(deps, ride_id, pickup, (), now)
    except BaseException:
        # Nothing stored: the ride does not count. (A driver reserved meanwhile goes back
        # with its lease.) A failure from here on leaves the count to the staleness check.
        await uncount_briefly(deps, actor.id, ride_id)
        raise
    ride = rides.request(ride_id, actor.id, pickup, dropoff, offer, now)
    if not await deps.rides.create(ride):
        if offer is not None:
            await release_driver(deps, offer.driver_id, ride_id, offer.fence)
        existing = await deps.rides.get(ride_id)
        if existing is None or existing.rider_id != actor.id:
            raise Forbidden("this ride is not yours")
        return existing
    await ride_changed(deps, ride, None)
    if offer is None:
        await deps.deadlines.cancel(ride_item(ride_id))
    return ride
