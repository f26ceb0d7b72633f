"""A cap on each rider's active rides. Every active ride holds a driver; without a cap one
rider token requesting rides back to back takes every driver in an area off the market.

A ride is counted before its search starts and uncounted when it ends (effects.settle).
The two writes are in different slots, so a crash between a ride's end and its uncount,
or a request that died before storing its ride, leaves a stale count behind: a rider at
the cap has theirs checked against the rides themselves before being refused."""

from __future__ import annotations

import asyncio
import contextlib

from dispatch.service_layer.cleanup import CleanupBudget
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.errors import ActiveRideLimit
from dispatch.service_layer.ports import Admission, HeldRide
from dispatch.service_layer.rider_limits import rate_limited

# A count with no ride stored this long after it is a request that died; longer than
# any request runs (their deadline, DISPATCH_REQUEST_TIMEOUT_S, is 15 s by default).
ORPHAN_AFTER_MS = 120_000
UNCOUNT_WAIT_S = 0.25


def admission_for(
    deps: Deps, rider_id: str, ride_id: str, now_ms: int, limit: str | None = None
) -> Admission:
    """What count_ride asks of the store: the cap, and the rate of `limit` if it has one
    (else no token is taken: action '')."""
    rate = None
    if limit is not None and deps.rider_limits is not None:
        rate = deps.rider_limits.rates.get(limit)
    action = "" if rate is None or limit is None else limit
    return Admission(rider_id, ride_id, now_ms, deps.policy.max_active_rides, action, rate)


async def count_ride(
    deps: Deps,
    rider_id: str,
    ride_id: str,
    now_ms: int,
    limit: str | None = None,
    admitted: tuple[int, list[HeldRide]] | None = None,
) -> None:
    """Count `ride_id` among the rider's active rides, or raise ActiveRideLimit. With
    `limit`, first take one token of the rider's limit for that action (RiderLimits), in
    the same store call (the same slot on Redis), or raise RiderRateLimited. `admitted`:
    that call's answer, made already with the request's claim (Claim.admitted)."""
    ask = admission_for(deps, rider_id, ride_id, now_ms, limit)
    cap = ask.cap
    if admitted is not None:
        wait_ms, held = admitted
    elif ask.rate is None:
        wait_ms, held = 0, await deps.active_rides.hold(rider_id, ride_id, now_ms, cap)
    else:
        wait_ms, held = await deps.active_rides.admit(
            rider_id, ride_id, now_ms, cap, ask.action, ask.rate
        )
    if wait_ms > 0:
        raise rate_limited(ask.action, wait_ms)
    if not held:
        return
    stale = [h for h in held if await _over(deps, h, now_ms)]
    for h in stale:
        await deps.active_rides.drop(rider_id, h.ride_id)
    if stale and not await deps.active_rides.hold(rider_id, ride_id, now_ms, cap):
        return
    raise ActiveRideLimit(
        f"a rider may have {cap} active ride(s) at once; cancel or finish one first"
    )


async def uncount_briefly(
    deps: Deps, rider_id: str, ride_id: str, cleanup: CleanupBudget | None = None
) -> None:
    """After a request failed before storing its ride: best effort, and brief, as a slow
    store must not hold a failed request longer (within `cleanup`, the request's budget
    for undoing, when given). A count left behind is found stale by the rider's next
    request at the cap."""
    if cleanup is not None:
        await cleanup.run(deps.active_rides.drop(rider_id, ride_id))
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(deps.active_rides.drop(rider_id, ride_id), UNCOUNT_WAIT_S)


async def _over(deps: Deps, held: HeldRide, now_ms: int) -> bool:
    ride = await deps.rides.get(held.ride_id)
    if ride is None:
        return held.held_at + ORPHAN_AFTER_MS <= now_ms
    return not ride.active
