"""What follows every stored ride change, in one place: a released driver goes back to
search, the offer timer is set or cleared, an ended ride stops counting against its
rider, and listeners and metrics hear of it. Use cases store a step, then call settle()."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace

from dispatch.domain.rides import RideChange, RideStatus
from dispatch.service_layer.airport import on_ride_change
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.notices import NoticeKind, RideNotice, driver_topic, ride_topic
from dispatch.service_layer.ops_view import OPS_TOPIC
from dispatch.service_layer.ports import Holders, Subscription
from dispatch.service_layer.reservations import release_driver
from dispatch.service_layer.timers import OfferTimeout


async def settle(
    deps: Deps,
    change: RideChange,
    *,
    offer_timer_set: bool = False,
    holders: Holders | None = None,
) -> None:
    """`offer_timer_set`: the change's offer timer is already scheduled (settle_many, a
    new ride's find_offer). `holders`: the listeners of some of its notices' topics,
    already looked up (a new ride's driver's, with the reservation)."""
    ride = change.after
    if change.released is not None:
        driver_id, fence = change.released
        await release_driver(deps, driver_id, ride.id, fence)
    timer = OfferTimeout(ride.id).key
    # A new ride's offer timer is kept near its driver (reservations.find_new_offer): an
    # offer that ends is looked for there too.
    left = _offer_left(change)
    if change.offer_due is not None:
        if not offer_timer_set:
            await deps.deadlines.schedule(timer, change.offer_due)
        if left is not None:
            # Offered to the next driver, the timer is set again by its name; then a copy
            # kept near the driver before goes (else it would fire at that offer's time,
            # and with each later offer's, finding nothing to do). Only then: should the
            # new time fail to be set, the old copy still moves the ride on.
            await deps.deadlines.cancel(timer, left, by_name=False)
    elif change.offer_closed:
        await deps.deadlines.cancel(timer, left)
    if change.ended:
        await deps.active_rides.drop(ride.rider_id, ride.id)
    if change.pickup_ms is not None and ride.pickup_distance_m is not None:
        await deps.eta.observe_pickup(
            ride.pickup, ride.pickup_distance_m, change.pickup_ms, ride.updated_at
        )
    await on_ride_change(deps, change)  # airport queues: back, served, head again
    deps.observer.ride_changed(ride)
    await _notify(deps, change, holders)


async def settle_many(
    deps: Deps,
    changes: Sequence[RideChange],
    parallel: int = 64,
    *,
    offer_timers_set: bool = False,
) -> None:
    """settle() for a batch of changes of distinct rides (a matching window's offers):
    their offer timers in one call (unless `offer_timers_set`: the caller scheduled them
    beside its own writes), their notices in one batch at the end, the rest `parallel`
    changes at a time."""
    if not offer_timers_set:
        await deps.deadlines.schedule_many(offer_timers(changes))
    held = _HeldNotices()
    holding = replace(deps, notifier=held)
    for start in range(0, len(changes), parallel):
        await asyncio.gather(
            *(settle(holding, c, offer_timer_set=True) for c in changes[start : start + parallel])
        )
    await deps.notifier.publish_many(held.sends, held.known)


def _offer_left(change: RideChange) -> str | None:
    """The driver the ride was offered to before the change, if that offer is over."""
    b, a = change.before, change.after
    if b is None or b.status is not RideStatus.OFFERED:
        return None
    if a.status is RideStatus.OFFERED and (a.driver_id, a.fence) == (b.driver_id, b.fence):
        return None
    return b.driver_id


def offer_timers(changes: Sequence[RideChange]) -> dict[str, int]:
    """The offer timers the changes' offers need: timer key -> when the offer runs out."""
    return {OfferTimeout(c.after.id).key: c.offer_due for c in changes if c.offer_due is not None}


class _HeldNotices:
    """A Notifier that keeps what is published, for settle_many to send as one batch."""

    def __init__(self) -> None:
        self.sends: list[tuple[str, RideNotice]] = []
        self.known: dict[str, Sequence[str]] = {}  # holders given with them

    async def publish(self, topic: str, notice: RideNotice) -> None:
        self.sends.append((topic, notice))

    async def publish_many(
        self, sends: Sequence[tuple[str, RideNotice]], holders: Holders | None = None
    ) -> None:
        self.sends += sends
        self.known.update(holders or {})

    async def holders(self, topics: Sequence[str]) -> Holders:
        raise NotImplementedError("notices are only held here, to be sent together")

    def subscribe(self, topic: str) -> AbstractAsyncContextManager[Subscription]:
        raise NotImplementedError("notices are only held here, to be sent together")


async def _notify(deps: Deps, change: RideChange, holders: Holders | None) -> None:
    """Every notice of one change in one batch (a topic's notices keep their order)."""
    ride = change.after
    notice = RideNotice(NoticeKind.RIDE, ride)
    sends = [(OPS_TOPIC, notice)]  # the ops map
    if change.before is not None:
        # A new ride's topic has no listener to tell: the rider's event stream reads the
        # stored ride after subscribing, a request waiting for its match once no notice
        # came for a window (ride_wait).
        sends.append((ride_topic(ride.id), notice))
    if ride.driver_id is not None:
        kind = NoticeKind.OFFER if change.new_offer else NoticeKind.RIDE
        sends.append((driver_topic(ride.driver_id), RideNotice(kind, ride)))
    if change.left_driver is not None:
        sends.append((driver_topic(change.left_driver), RideNotice(NoticeKind.LEFT, ride)))
    await deps.notifier.publish_many(sends, holders)
