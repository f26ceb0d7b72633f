"""Hand an offered ride on after a decline or a timeout: next candidate, or no_driver."""

from __future__ import annotations

from dispatch.domain import rides
from dispatch.domain.rides import Ride, RideChange
from dispatch.service_layer.batching import pass_back
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.effects import settle
from dispatch.service_layer.reservations import find_offer, release_driver


async def offer_to_next(deps: Deps, ride: Ride) -> Ride | None:
    """`ride` is offered to a driver who declined or let the offer run out.

    The next candidate is reserved before the ride is rewritten, so the ride never points
    at a driver not held for it. If another step changed the ride first (compare-and-set
    lost), the new reservation is released and None returned: the caller reloads.
    """
    assert ride.driver_id is not None
    if deps.batching is not None:
        return await pass_back(deps, ride)  # to the next window, without this driver
    now = deps.clock.now_ms()
    offer = None
    if rides.may_reoffer(ride, deps.policy.max_attempts):
        excluded = (*ride.declined, ride.driver_id)
        offer = await find_offer(deps, ride.id, ride.pickup, excluded, now, product=ride.product)
    new = rides.pass_on(ride, offer, deps.policy.max_attempts, now)
    if not await deps.rides.replace(new):
        if offer is not None:
            await release_driver(deps, offer.driver_id, ride.id, offer.fence)
        return None
    await settle(deps, RideChange(ride, new))  # frees the driver who passed
    return new
