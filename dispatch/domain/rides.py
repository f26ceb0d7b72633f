"""The ride state machine.

    offered -> accepted -> arrived -> in_progress -> completed
    offered -> offered (a decline or an offer timeout hands the ride to the next candidate)
    offered -> no_driver (no candidate left, or the attempts are used up)
    offered | accepted | arrived -> cancelled (by the rider or the ride's driver)

Batched matching (DISPATCH_MATCH_WINDOW_MS > 0) adds a first state:

    searching -> offered (its window was solved) | no_driver (waited too long)
    offered -> searching (a decline or timeout sends the ride to the next window)
    searching -> cancelled (by the rider)

A ride in progress cannot be cancelled: the passenger is in the car, and the trip ends
with `complete`. Every step returns a new Ride with `version` one higher; stores write
it only over the version it was computed from (compare-and-set), so two concurrent steps
on one ride never both win.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any

from dispatch.domain.errors import InvalidTransition, NotParticipant, OfferExpired
from dispatch.domain.geo import LatLng


class RideStatus(enum.StrEnum):
    SEARCHING = "searching"  # batched matching: waiting for its window to be solved
    OFFERED = "offered"
    ACCEPTED = "accepted"
    ARRIVED = "arrived"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_DRIVER = "no_driver"


ACTIVE = frozenset(
    {
        RideStatus.SEARCHING,
        RideStatus.OFFERED,
        RideStatus.ACCEPTED,
        RideStatus.ARRIVED,
        RideStatus.IN_PROGRESS,
    }
)
COMMITTED = frozenset({RideStatus.ACCEPTED, RideStatus.ARRIVED, RideStatus.IN_PROGRESS})
TERMINAL = frozenset({RideStatus.COMPLETED, RideStatus.CANCELLED, RideStatus.NO_DRIVER})
CANCELLABLE = frozenset(
    {RideStatus.SEARCHING, RideStatus.OFFERED, RideStatus.ACCEPTED, RideStatus.ARRIVED}
)


@dataclass(frozen=True, slots=True)
class Offer:
    """A reserved candidate: the driver, its reservation token, and what the rider is told."""

    driver_id: str
    fence: int
    distance_m: float
    eta_s: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class Ride:
    id: str
    rider_id: str
    pickup: LatLng
    dropoff: LatLng | None
    status: RideStatus
    created_at: int
    updated_at: int
    driver_id: str | None = None
    fence: int | None = None
    pickup_distance_m: float | None = None
    eta_s: int | None = None
    offer_expires_at: int | None = None
    attempts: int = 0  # offers made so far
    declined: tuple[str, ...] = ()  # drivers who declined or let the offer time out
    cancelled_by: str | None = None
    version: int = 1
    surge: float | None = None  # the multiplier a fare quote locked in; None: no quote
    product: str | None = None  # what the rider asked for; None: stored before products

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def _offer_fields(offer: Offer) -> dict[str, Any]:
    """What an offer sets on its ride, besides the status."""
    return {
        "driver_id": offer.driver_id,
        "fence": offer.fence,
        "pickup_distance_m": offer.distance_m,
        "eta_s": offer.eta_s,
        "offer_expires_at": offer.expires_at,
    }


def _with_offer(ride: Ride, offer: Offer) -> Ride:
    return replace(ride, status=RideStatus.OFFERED, **_offer_fields(offer))


def _without_driver(ride: Ride, status: RideStatus) -> Ride:
    return replace(
        ride,
        status=status,
        driver_id=None,
        fence=None,
        pickup_distance_m=None,
        eta_s=None,
        offer_expires_at=None,
    )


def request(
    ride_id: str,
    rider_id: str,
    pickup: LatLng,
    dropoff: LatLng | None,
    offer: Offer | None,
    now_ms: int,
    surge: float | None = None,
    product: str | None = None,
) -> Ride:
    """A new ride: offered to the first reserved candidate, or no_driver if there was none."""
    if offer is None:
        status, offered = RideStatus.NO_DRIVER, {}
    else:  # built once: dataclasses.replace costs some 5 us a call (it walks the fields)
        status, offered = RideStatus.OFFERED, {**_offer_fields(offer), "attempts": 1}
    return Ride(
        ride_id,
        rider_id,
        pickup,
        dropoff,
        status,
        now_ms,
        now_ms,
        surge=surge,
        product=product,
        **offered,
    )


def searching(
    ride_id: str,
    rider_id: str,
    pickup: LatLng,
    dropoff: LatLng | None,
    now_ms: int,
    surge: float | None = None,
    product: str | None = None,
) -> Ride:
    """A new ride in batched mode: waiting for its window."""
    return Ride(
        ride_id,
        rider_id,
        pickup,
        dropoff,
        RideStatus.SEARCHING,
        now_ms,
        now_ms,
        surge=surge,
        product=product,
    )


def matched(ride: Ride, offer: Offer, now_ms: int) -> Ride:
    """A searching ride's window gave it a driver (reserved under `offer`)."""
    _require(ride, RideStatus.SEARCHING, "match")
    if offer.driver_id in ride.declined:
        raise ValueError(f"driver {offer.driver_id} already passed on this ride")
    return replace(_with_offer(_step(ride, now_ms), offer), attempts=ride.attempts + 1)


def search_ended(ride: Ride, now_ms: int) -> Ride:
    """A searching ride waited its longest without a driver."""
    _require(ride, RideStatus.SEARCHING, "end the search of")
    return replace(_step(ride, now_ms), status=RideStatus.NO_DRIVER)


def reclaimed(ride: Ride, now_ms: int) -> Ride:
    """A searching ride a window may have reserved a driver for without naming it (the
    window's holder died or lost its lease in between): a new version, still searching,
    so that the window's offer, computed from the old one, can never be stored."""
    _require(ride, RideStatus.SEARCHING, "reclaim")
    return _step(ride, now_ms)


def pass_back(ride: Ride, max_attempts: int, now_ms: int) -> Ride:
    """Batched mode's pass_on: the offered driver declined or timed out; the ride goes
    back to searching (the driver excluded from then on), or ends if its attempts are
    used up."""
    _require(ride, RideStatus.OFFERED, "pass on")
    assert ride.driver_id is not None
    passed = replace(_step(ride, now_ms), declined=(*ride.declined, ride.driver_id))
    status = RideStatus.SEARCHING if may_reoffer(ride, max_attempts) else RideStatus.NO_DRIVER
    return _without_driver(passed, status)


def _step(ride: Ride, now_ms: int) -> Ride:
    return replace(ride, updated_at=now_ms, version=ride.version + 1)


def _require(ride: Ride, allowed: frozenset[RideStatus] | RideStatus, action: str) -> None:
    ok = ride.status in allowed if isinstance(allowed, frozenset) else ride.status is allowed
    if not ok:
        raise InvalidTransition(f"cannot {action} a ride that is {ride.status.value}")


def _require_driver(ride: Ride, driver_id: str) -> None:
    if ride.driver_id != driver_id:
        raise NotParticipant("this ride is not yours")


def offer_expired(ride: Ride, now_ms: int) -> bool:
    return (
        ride.status is RideStatus.OFFERED
        and ride.offer_expires_at is not None
        and ride.offer_expires_at <= now_ms
    )


def may_reoffer(ride: Ride, max_attempts: int) -> bool:
    return ride.attempts < max_attempts


def check_decline(ride: Ride, driver_id: str) -> None:
    _require_driver(ride, driver_id)
    _require(ride, RideStatus.OFFERED, "decline")


def pass_on(ride: Ride, offer: Offer | None, max_attempts: int, now_ms: int) -> Ride:
    """The offered driver declined or timed out: offer the next candidate, or give up.

    The driver who passed joins `declined` and is never offered this ride again.
    """
    _require(ride, RideStatus.OFFERED, "pass on")
    assert ride.driver_id is not None
    declined = (*ride.declined, ride.driver_id)
    passed = replace(_step(ride, now_ms), declined=declined)
    if offer is None or not may_reoffer(ride, max_attempts):
        return _without_driver(passed, RideStatus.NO_DRIVER)
    if offer.driver_id in declined:
        raise ValueError(f"driver {offer.driver_id} already passed on this ride")
    return replace(_with_offer(passed, offer), attempts=ride.attempts + 1)


def accept(ride: Ride, driver_id: str, now_ms: int) -> Ride:
    _require_driver(ride, driver_id)
    if offer_expired(ride, now_ms):
        raise OfferExpired("the offer has expired")
    return restore_accept(ride, now_ms)


def restore_accept(ride: Ride, now_ms: int) -> Ride:
    """Accept on behalf of the offered driver whose own record shows it accepted in time
    (the ride's copy of that accept was lost), even if the offer has run out since."""
    _require(ride, RideStatus.OFFERED, "accept")
    return replace(_step(ride, now_ms), status=RideStatus.ACCEPTED, offer_expires_at=None)


def arrive(ride: Ride, driver_id: str, now_ms: int) -> Ride:
    _require_driver(ride, driver_id)
    _require(ride, RideStatus.ACCEPTED, "mark arrived")
    return replace(_step(ride, now_ms), status=RideStatus.ARRIVED)


def start(ride: Ride, driver_id: str, now_ms: int) -> Ride:
    _require_driver(ride, driver_id)
    _require(ride, RideStatus.ARRIVED, "start")
    return replace(_step(ride, now_ms), status=RideStatus.IN_PROGRESS)


def complete(ride: Ride, driver_id: str, now_ms: int) -> Ride:
    _require_driver(ride, driver_id)
    _require(ride, RideStatus.IN_PROGRESS, "complete")
    return replace(_step(ride, now_ms), status=RideStatus.COMPLETED)


def cancel(ride: Ride, by_rider: str | None, by_driver: str | None, now_ms: int) -> Ride:
    """Cancel on behalf of the ride's rider (by_rider) or its current driver (by_driver)."""
    if by_rider is not None:
        if by_rider != ride.rider_id:
            raise NotParticipant("this ride is not yours")
        who = "rider"
    elif by_driver is not None:
        _require_driver(ride, by_driver)
        who = "driver"
    else:
        raise ValueError("cancel needs a rider or a driver")
    _require(ride, CANCELLABLE, "cancel")
    cancelled = replace(_step(ride, now_ms), status=RideStatus.CANCELLED, offer_expires_at=None)
    return replace(cancelled, cancelled_by=who)


@dataclass(frozen=True, slots=True)
class RideChange:
    """What one stored step did to a ride: the version it replaced (None for a new ride)
    and the one now stored. Everything that must follow a change (timers, releasing a
    driver, the rider's count, notifications) is read off these facts, in one place."""

    before: Ride | None
    after: Ride

    @property
    def offer_due(self) -> int | None:
        """When the offer the ride now holds runs out, if it holds one."""
        if self.after.status is RideStatus.OFFERED:
            return self.after.offer_expires_at
        return None

    @property
    def offer_closed(self) -> bool:
        """The ride holds no offer any more: its offer timer goes. A new ride's timer is
        set only with its offer (reservations.find_offer), so one without has none."""
        was_offered = self.before is not None and self.before.status is RideStatus.OFFERED
        return was_offered and self.after.status is not RideStatus.OFFERED

    @property
    def new_offer(self) -> bool:
        """The ride is now offered to a driver it was not offered to before."""
        return self.after.status is RideStatus.OFFERED and (
            self.before is None or self.before.driver_id != self.after.driver_id
        )

    @property
    def ended(self) -> bool:
        return self.after.status in TERMINAL and (
            self.before is None or self.before.status not in TERMINAL
        )

    @property
    def released(self) -> tuple[str, int] | None:
        """The reservation (driver, fence) this change lets go: the ride ended, or moved
        on to another driver."""
        b = self.before
        if b is None or b.driver_id is None or b.fence is None:
            return None
        moved = (self.after.driver_id, self.after.fence) != (b.driver_id, b.fence)
        return (b.driver_id, b.fence) if moved or self.after.status in TERMINAL else None

    @property
    def left_driver(self) -> str | None:
        """A driver the ride no longer names (declined, timed out, no driver left)."""
        b = self.before
        if b is None or b.driver_id is None or b.driver_id == self.after.driver_id:
            return None
        return b.driver_id

    @property
    def pickup_ms(self) -> int | None:
        """How long the driver took from accepting to arriving, when this is the arrival:
        an observed pickup, for the ETA model."""
        b = self.before
        if b is None or b.status is not RideStatus.ACCEPTED:
            return None
        if self.after.status is not RideStatus.ARRIVED:
            return None
        return self.after.updated_at - b.updated_at
