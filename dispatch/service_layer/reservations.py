"""Reserving drivers and letting them go: the only places a driver leaves or rejoins the
geo index's search because of a ride (and so the only places that call set_available
for one)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from dispatch.domain.geo import LatLng
from dispatch.domain.matching import Candidate, next_candidates
from dispatch.domain.rides import Offer
from dispatch.service_layer.airport import queue_offer
from dispatch.service_layer.areas import in_zone
from dispatch.service_layer.cleanup import CleanupBudget
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.notices import driver_topic
from dispatch.service_layer.ports import Holders, Reservation
from dispatch.service_layer.product_search import nearest_upgrades, upgrades_of
from dispatch.service_layer.timers import LeaseCheck, OfferTimeout
from geoindex import MAX_K
from geoindex.redis_pipeline import together

LEASE_CHECK_LEAD_MS = 5_000


Hide = Callable[[], Awaitable[None]]  # the rest of a reservation's hiding (drivers.hidden)


async def find_offer(
    deps: Deps,
    ride_id: str,
    pickup: LatLng,
    excluded: Iterable[str],
    now_ms: int,
    cleanup: CleanupBudget | None = None,
    product: str | None = None,
) -> Offer | None:
    """Reserve the nearest free driver not in `excluded`, widening the radius in steps.
    With `product`, only drivers serving it; at a step where none of them is left to try,
    the drivers serving its upgrades (product_search).

    A refused reservation (someone else was faster, or the driver went stale or offline)
    moves on to the next candidate; after `max_reservation_tries` refusals we give up,
    so a flood of requests for few drivers ends quickly as no_driver.
    """
    offer, _, _ = await _find(deps, ride_id, pickup, excluded, now_ms, cleanup, product, False)
    return offer


async def find_new_offer(
    deps: Deps,
    ride_id: str,
    pickup: LatLng,
    now_ms: int,
    cleanup: CleanupBudget | None = None,
    product: str | None = None,
) -> tuple[Offer | None, Hide | None, Holders | None]:
    """find_offer for a new ride, whose store the caller sends next. The offer's own timer
    (OfferTimeout, due when the offer returned runs out) is set too, with the driver's
    lease check: both go with each reservation, before its answer (a refused one leaves
    them to fire into nothing: their handlers look before they act), and so are in
    before the ride is stored. The driver's hiding from the index's search is left
    half done: the caller finishes it with the Hide returned, at once with the ride's
    store (one write where they share a node; None: nothing to finish). The listeners
    of the driver's topic are looked up in the reservation's write too: the Holders
    returned are for the offer's notices (settle; None: not looked up)."""
    return await _find(deps, ride_id, pickup, (), now_ms, cleanup, product, True)


async def _find(
    deps: Deps,
    ride_id: str,
    pickup: LatLng,
    excluded: Iterable[str],
    now_ms: int,
    cleanup: CleanupBudget | None,
    product: str | None,
    new_ride: bool,
) -> tuple[Offer | None, Hide | None, Holders | None]:
    policy = deps.policy
    excluded = frozenset(excluded)
    tried: set[str] = set()
    refused = 0
    # Only drivers inside the service area the pickup is in (anyone, with no such areas).
    zone = deps.areas.zone(pickup.lat, pickup.lng)
    own: tuple[str, ...] = () if product is None else (product,)
    # A pickup inside an airport goes to the head of its queue first (if anyone waits);
    # the queue is for the default product's rides (a rider asking for another product
    # is matched by distance among its drivers), and its head must serve it.
    queued = None
    if product is None or product == deps.products.default:
        queued = await queue_offer(deps, ride_id, pickup, excluded, now_ms, own)
    offer_due = now_ms + policy.offer_timeout_ms
    if queued is not None:
        driver_id, fence, distance = queued
        try:
            eta_s = await deps.eta.eta_s(pickup, distance, now_ms)
            if new_ride:  # the queue set the lease timer and hid the driver (airport)
                await deps.deadlines.schedule(OfferTimeout(ride_id).key, offer_due)
        except BaseException:
            await give_back(deps, driver_id, ride_id, fence, cleanup)
            raise
        return Offer(driver_id, fence, distance, eta_s, offer_due), None, None
    for radius in policy.radius_steps_m:
        # Ask for enough to see past everyone already tried or excluded.
        k = min(MAX_K, policy.candidates_per_step + len(tried) + len(excluded))
        found = await deps.index.nearest(pickup.lat, pickup.lng, k, radius, product)
        batch = [
            Candidate(n.driver_id, n.distance_m) for n in in_zone(deps.areas, zone, found, tried)
        ]
        candidates = next_candidates(batch, excluded, tried)
        serves = own
        if not candidates and product is not None:
            found = await nearest_upgrades(deps, pickup.lat, pickup.lng, k, radius, product)
            batch = [
                Candidate(n.driver_id, n.distance_m)
                for n in in_zone(deps.areas, zone, found, tried)
            ]
            candidates = next_candidates(batch, excluded, tried)
            serves = upgrades_of(deps, product)
        for cand in candidates:
            lease_until = now_ms + deps.lease_ms
            # The reservation checks the product again, atomically: the driver's vehicle
            # may have changed since the search. It also takes the driver out of the
            # index's search (hide), finished by hidden().
            # The lease check frees the driver should this instance die before the ride is
            # stored; the offer's own timer normally releases it long before. It fires a
            # little before the lease runs out, to repair a lost accept first (deadlines).
            lease_check = LeaseCheck(cand.driver_id).key, lease_until - LEASE_CHECK_LEAD_MS
            reserving = deps.drivers.reserve(
                cand.driver_id, ride_id, now_ms, lease_until, serves, hide=True
            )
            failed: BaseException | None = None  # the new ride's timers' failure
            holders: Holders | None = None
            try:
                if not new_ride:
                    rec = await reserving
                else:
                    # The offer's timer, set before the ride is stored: it fires should we
                    # die after storing it. Both timers are kept near the driver (on a
                    # cluster, a timer shard on the driver's master: the reservation's own
                    # write), or else the lease check beside the offer's timer (one ZADD);
                    # the offer's timer is cancelled given its driver (settle).
                    # The driver's listeners are looked up beside the reservation (their
                    # key shares the driver's slot): the offer's notice needs no look-up.
                    # The reservation may be refused (the driver held by another ride,
                    # perhaps an orphan whose lease check is due): the driver's lease
                    # check keeps an earlier time, or each refused try would put it off.
                    offer_key = OfferTimeout(ride_id).key
                    due = {offer_key: offer_due, lease_check[0]: lease_check[1]}
                    timers = deps.deadlines.schedule_many(
                        due, offer_key, keep_earlier=True, near=cand.driver_id
                    )
                    with together():  # one write where the timers' shard and driver meet
                        got, failed, listening = await asyncio.gather(
                            reserving,
                            timers,
                            deps.notifier.holders([driver_topic(cand.driver_id)]),
                            return_exceptions=True,
                        )
                    if isinstance(got, BaseException):
                        raise got
                    rec = got
                    # A failed look-up costs only its saving: the notice looks up again.
                    if not isinstance(listening, BaseException):
                        holders = listening
            except BaseException:
                # Its answer lost, the reservation may have been made, and with it the
                # driver's absence from the search: the lease timer gives both back once
                # the lease runs out (it follows whoever holds the driver then).
                schedule = deps.deadlines.schedule_many(
                    dict([lease_check]), keep_earlier=True, near=cand.driver_id
                )
                await (cleanup or CleanupBudget()).run(schedule)
                raise
            if rec is None:
                if failed is not None:
                    raise failed
                refused += 1
                if refused >= policy.max_reservation_tries:
                    return None, None, None
                continue
            if new_ride:  # the timers are in; the hiding goes with the ride's store
                try:
                    if failed is not None:
                        raise failed
                    eta_s = await deps.eta.eta_s(pickup, cand.distance_m, now_ms)
                except BaseException:
                    await give_back(deps, cand.driver_id, ride_id, rec.fence, cleanup)
                    raise
                hide = partial(deps.drivers.hidden, cand.driver_id, rec.fence)
                offer = Offer(cand.driver_id, rec.fence, cand.distance_m, eta_s, offer_due)
                return offer, hide, holders
            # Three independent steps at once, all ended before any failure is undone (so
            # the give-back never races a step still running).
            try:
                # The region's write first: it goes out from a task of the index's own, a
                # turn later than a call made here, and so meets the lease check's write
                # only when its task starts before that batch leaves (together()).
                _, _, eta_s = await all_ended(
                    deps.drivers.hidden(cand.driver_id, rec.fence),
                    deps.deadlines.schedule(*lease_check),
                    deps.eta.eta_s(pickup, cand.distance_m, now_ms),
                )
            except BaseException:
                await give_back(deps, cand.driver_id, ride_id, rec.fence, cleanup)
                raise
            return Offer(cand.driver_id, rec.fence, cand.distance_m, eta_s, offer_due), None, None
    return None, None, None


@dataclass(frozen=True, slots=True)
class Chosen:
    """A pair a matching window chose; `serves`: the products the driver must serve (the
    ride's own, or its upgrades for a driver found among those)."""

    ride_id: str
    driver_id: str
    distance_m: float
    eta_s: int
    serves: tuple[str, ...] = ()


async def reserve_chosen(deps: Deps, chosen: Sequence[Chosen], now_ms: int) -> list[Offer | None]:
    """Reserve the drivers a matching window chose (batched mode), in a few round trips
    whatever their number: the same reservation, lease timer and index availability as
    find_offer's, each reservation its own atomic step; None where refused."""
    lease_until = now_ms + deps.lease_ms
    recs = await deps.drivers.reserve_many(
        [Reservation(c.driver_id, c.ride_id, c.serves) for c in chosen], now_ms, lease_until
    )
    won = [(c, rec.fence) for c, rec in zip(chosen, recs, strict=True) if rec is not None]
    try:
        due = lease_until - LEASE_CHECK_LEAD_MS
        await all_ended(  # independent, as in find_offer
            deps.deadlines.schedule_many({LeaseCheck(c.driver_id).key: due for c, _ in won}),
            deps.index.set_available_many([c.driver_id for c, _ in won], False),
        )
    except BaseException:
        cleanup = CleanupBudget()
        for c, fence in won:
            await give_back(deps, c.driver_id, c.ride_id, fence, cleanup)
        raise
    due_ms = now_ms + deps.policy.offer_timeout_ms
    return [
        None if rec is None else Offer(c.driver_id, rec.fence, c.distance_m, c.eta_s, due_ms)
        for c, rec in zip(chosen, recs, strict=True)
    ]


async def all_ended(*steps: Awaitable[Any]) -> list[Any]:
    """The steps' results, run at once; once every one has ended, the first failure.
    Their Redis calls to one node go out in one write (together)."""
    with together():
        results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


async def release_driver(deps: Deps, driver_id: str, ride_id: str, fence: int) -> bool:
    """Free a driver held for `ride_id` under `fence`; a stale token changes nothing.
    The driver comes back to the index's search in the same step (show)."""
    return await deps.drivers.release(driver_id, ride_id, fence, show=True)


async def give_back(
    deps: Deps, driver_id: str, ride_id: str, fence: int, cleanup: CleanupBudget | None
) -> None:
    """A request that failed after reserving the driver frees it at once, best effort
    within the request's clean-up budget; the lease is the backstop."""
    await (cleanup or CleanupBudget()).run(release_driver(deps, driver_id, ride_id, fence))


async def free_expired_lease(deps: Deps, driver_id: str, now_ms: int) -> bool:
    """Free a reservation whose lease ran out (its holder never came back), back in the
    index's search in the same step (show)."""
    return await deps.drivers.expire_lease(driver_id, now_ms, show=True)
