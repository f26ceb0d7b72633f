"""Request a ride: find and reserve the nearest driver, store the ride, offer it; with an
Idempotency-Key, at most once per rider and key (invariant 5)."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable

from dispatch.domain import rides
from dispatch.domain.areas import OutsideServiceArea, PickupNotAllowed
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.retention import kept_for
from dispatch.domain.rides import Ride, RideChange
from dispatch.service_layer import idempotency, slot_ids
from dispatch.service_layer.area_rules import check_ride
from dispatch.service_layer.batching import enqueue
from dispatch.service_layer.cleanup import CleanupBudget
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.effects import settle
from dispatch.service_layer.errors import Forbidden
from dispatch.service_layer.ports import Answer, Claim, HeldRide
from dispatch.service_layer.quotes import count_request, locked_surge
from dispatch.service_layer.reservations import (
    all_ended,
    find_new_offer,
    give_back,
    release_driver,
)
from dispatch.service_layer.rider_limits import RIDES
from dispatch.service_layer.rider_rides import admission_for, count_ride, uncount_briefly

log = logging.getLogger(__name__)


def new_ride_id(rider_id: str, idempotency_key: str | None, in_rider_slot: bool = True) -> str:
    """Random, or derived from the rider and the Idempotency-Key: then a retry after a
    crash finds the ride the first attempt stored instead of making a second one.
    `in_rider_slot`: five hex digits more put the ride's keys (and its key's record) in
    its rider's Redis Cluster slot (slot_ids), so one script claims the key and counts
    the ride (docs/api.md, ride ids: an older instance mints the shorter id)."""
    if idempotency_key is None:
        base = "r_" + uuid.uuid4().hex
    else:
        digest = hashlib.sha256(f"{rider_id}\0{idempotency_key}".encode()).hexdigest()
        base = "r_" + digest[:32]
    return slot_ids.in_slot(base, rider_id) if in_rider_slot else base


def record_key(rider_id: str, idempotency_key: str, in_rider_slot: bool = True) -> str:
    """The idempotency record of one (rider, key) pair is named by the ride it stores (on
    Redis it then shares the ride's slot). The id hashes rider and key with a NUL between
    (ids are [A-Za-z0-9_.:-], keys printable ASCII): no two pairs share one."""
    return new_ride_id(rider_id, idempotency_key, in_rider_slot)


def request_fingerprint(
    pickup: LatLng, dropoff: LatLng | None, quote_id: str | None = None, product: str | None = None
) -> str:
    """The validated request, not its bytes: `10` and `10.0`, or `"dropoff": null` and no
    dropoff, are the same request (and no product the same as the default one named)."""
    points = [pickup] if dropoff is None else [pickup, dropoff]
    return idempotency.fingerprint(
        b"POST /v1/rides",
        *(f"{float(p.lat)!r},{float(p.lng)!r}".encode() for p in points),
        *([] if quote_id is None else [b"quote " + quote_id.encode()]),
        *([] if product is None else [b"product " + product.encode()]),
    )


async def request_ride(
    deps: Deps,
    actor: Principal,
    ride_id: str,
    pickup: LatLng,
    dropoff: LatLng | None,
    quote_id: str | None = None,
    cleanup: CleanupBudget | None = None,
    product: str | None = None,
    fresh_id: bool = False,
    limit: str | None = None,
    earlier: Ride | None = None,
    answer: Callable[[Ride], Answer] | None = None,
    admitted: tuple[int, list[HeldRide]] | None = None,
) -> Ride:
    """`cleanup`: the budget for undoing what a failed request did (one is made if none
    is given; request_ride_once shares its own with giving up the Idempotency-Key).
    `fresh_id`: no earlier try's ride is to be looked for: `ride_id` was just drawn at
    random (no Idempotency-Key), or the key's claim read it already (`earlier`: that
    ride, None if none is stored). `limit`: the rider limit (RiderLimits' action) a
    request that gets this far takes a token of, with its count. `answer`: the
    Idempotency-Key answer for a ride, stored with the ride this request creates (the
    ride returned is then the very one given to it). `admitted`: the rider's admission of
    the ride, made with the key's claim (Claim.admitted) once the areas allowed it."""
    if actor.role is not Role.RIDER:
        raise Forbidden("only a rider token may request a ride")
    existing = earlier if fresh_id else await deps.rides.get(ride_id)
    if existing is not None:
        if existing.rider_id != actor.id:
            raise Forbidden("this ride is not yours")
        # Stored by a try whose answer was lost (perhaps 503 durability_timeout): answer
        # 201 only once it would survive a failover.
        await deps.rides.kept(ride_id)
        return existing
    now = deps.clock.now_ms()
    # A quote (of the same product) is checked first: refused, nothing is counted or reserved.
    surge = None if quote_id is None else await locked_surge(deps, actor, quote_id, pickup, product)
    if admitted is None:  # else checked before the claim admitted it
        check_ride(deps.areas, pickup, dropoff)  # areas refuse it: nothing counted or reserved
    # The rate's token and the cap's count in one store call: they share the rider's slot.
    await count_ride(deps, actor.id, ride_id, now, limit, admitted)
    offer = hide = holders = None
    try:
        # The offer's timer goes in with the driver's lease timer, before the ride is
        # stored: should we die after storing it, the timer still fires. No offer (no
        # driver, or batched: a window offers it later), no timer.
        if not deps.batching:
            offer, hide, holders = await find_new_offer(
                deps, ride_id, pickup, now, cleanup, product
            )
    except BaseException:
        # Nothing stored: the ride does not count. (A driver find_offer reserved before
        # it failed, it gave back itself.)
        await uncount_briefly(deps, actor.id, ride_id, cleanup)
        raise
    # the quoted surge holds: the ride keeps it
    if deps.batching is None:
        ride = rides.request(ride_id, actor.id, pickup, dropoff, offer, now, surge, product)
    else:  # batched: the ride waits for its region's window
        ride = rides.searching(ride_id, actor.id, pickup, dropoff, now, surge, product)
    try:
        if deps.batching is not None:
            await enqueue(deps, ride, now)
        # the key's answer with the ride: one step (the same slot on Redis)
        storing = deps.rides.create(ride, None if answer is None else answer(ride))
        # The market hears of an immediate request with its store (batched: once a
        # window offers it or gives up). Its count's key is the pickup's region's, as
        # the driver's hiding is usually the same region's: one write to that node.
        # The driver's hiding from the search is finished at once (one write where they
        # share a node): the reservation already refuses the driver to others. Its
        # region write is started first: it leaves from a task of the index's own, a
        # turn later, and meets the others' writes only if started before them.
        steps = [] if hide is None else [hide()]
        if deps.batching is None:
            steps.append(_counted(deps, ride))
        *_, created = await all_ended(*steps, storing)
    except BaseException:
        # Failed between reserving a driver and storing the ride: no supply held for a
        # ride nobody was told of. The driver goes back at once (the lease stays the
        # backstop), then the count. Should the ride have been stored after all (its
        # reply lost), its offer can never be accepted (the driver's key no longer holds
        # it) and its timer moves it on.
        if offer is not None:
            await give_back(deps, offer.driver_id, ride_id, offer.fence, cleanup)
        await uncount_briefly(deps, actor.id, ride_id, cleanup)
        raise
    if not created:
        if offer is not None:
            await release_driver(deps, offer.driver_id, ride_id, offer.fence)
        existing = await deps.rides.get(ride_id)
        if existing is None or existing.rider_id != actor.id:
            raise Forbidden("this ride is not yours")
        return existing
    change = RideChange(None, ride)
    # An offer runs out when the timer find_offer set fires (no offer: no timer).
    timer_set = offer is not None and change.offer_due == offer.expires_at
    # The offer's notice goes to the driver's listeners looked up with the reservation.
    await settle(deps, change, offer_timer_set=timer_set, holders=holders)
    return ride


async def _counted(deps: Deps, ride: Ride) -> None:
    """Count a request into the market, which only reads rates from the counts: a count
    lost to a fault is logged, not the ride's failure (its store may have succeeded).
    A retry that finds the ride an earlier try stored was counted by both (rare)."""
    try:
        await count_request(deps, ride)
    except Exception as exc:
        log.warning("ride %s not counted into the market: %s", ride.id, exc)


async def request_ride_once(
    deps: Deps,
    actor: Principal,
    pickup: LatLng,
    dropoff: LatLng | None,
    key: str | None,
    render: Callable[[Ride], bytes],
    wait_s: float = idempotency.WAIT_S,
    quote_id: str | None = None,
    product: str | None = None,
) -> bytes:
    """The answer to a ride request, rendered by `render`. With a key, a retry gets the
    first answer byte for byte (concurrent duplicates wait for it, at most `wait_s`), and
    the same key with another request is IdempotencyMismatch."""
    if actor.role is not Role.RIDER:
        raise Forbidden("only a rider token may request a ride")
    ride_id = new_ride_id(actor.id, key, deps.ride_ids_in_rider_slot)
    answered: list[Ride] = []
    cleanup = CleanupBudget()  # one budget for undoing a failed request, key included
    made: list[tuple[Ride, Answer]] = []

    async def produce(claim: Claim | None) -> tuple[bytes, bool]:
        # Counted against the rider's rate only when the request would make a ride (a
        # retry answered from its Idempotency-Key or its stored ride does not count, nor
        # does a refused quote or area); refused, nothing is stored.
        # With a key, the claim may have read the ride an earlier try stored, and the
        # answer is stored with the ride the request creates.
        looked = claim is None or claim.looked
        earlier = None if claim is None else claim.ride

        def answer(ride: Ride) -> Answer:
            assert claim is not None and key is not None
            keep_ms = kept_for(ride, idempotency.KEEP_MS)  # no_driver: 1 h
            made.append(
                (ride, Answer(ride_id, claim.token, render(ride), keep_ms))  # record_key's
            )
            return made[-1][1]

        ride = await request_ride(
            deps,
            actor,
            ride_id,
            pickup,
            dropoff,
            quote_id,
            cleanup,
            product,
            looked,
            RIDES,
            earlier,
            None if claim is None else answer,
            None if claim is None else claim.admitted,
        )
        answered.append(ride)
        if made and made[-1][0] is ride:  # this request created it: its answer is stored
            return made[-1][1].payload, True
        return render(ride), False

    if key is None:
        return (await produce(None))[0]

    async def ride_still_stored(claim: Claim) -> bool:
        # The ride's id comes from the key: a retry after its loss stores it again.
        stored = claim.ride is not None if claim.looked else await deps.rides.get(ride_id)
        if not stored:
            return False
        # The answer is stored by the very script that stores the ride, so a try answered
        # 503 durability_timeout leaves one for a ride its replicas may not have: replayed
        # only once the ride would survive a failover (as an earlier try's ride found
        # stored is, in request_ride).
        await deps.rides.kept(ride_id)
        return True

    # The claim admits the ride as well (on Redis one script: the ride's id is in its
    # rider's slot), unless a quote is to be checked first or the areas refuse the ride:
    # neither may count it. Only a claim that lets the request run, finding no ride an
    # earlier try stored, admits.
    admission = None
    if quote_id is None and _areas_allow(deps, pickup, dropoff):
        admission = admission_for(deps, actor.id, ride_id, deps.clock.now_ms(), RIDES)
    return await idempotency.once(
        deps.idempotency,
        ride_id,  # record_key(actor.id, key): the record is named by its ride
        request_fingerprint(pickup, dropoff, quote_id, product),
        produce,
        wait_s=wait_s,
        still_true=ride_still_stored,
        keep_ms=lambda: kept_for(answered[-1], idempotency.KEEP_MS),  # no_driver: 1 h
        cleanup=cleanup,
        ride_id=ride_id,  # the record shares the ride's slot: the claim reads the ride
        admission=admission,
    )


def _areas_allow(deps: Deps, pickup: LatLng, dropoff: LatLng | None) -> bool:
    try:
        check_ride(deps.areas, pickup, dropoff)
    except (OutsideServiceArea, PickupNotAllowed):
        return False
    return True
