"""What each ride step means for the rest of the system: the facts RideChange reads off
the ride before and after, from which every effect (timers, releases, counts, notices)
follows."""

from __future__ import annotations

from dispatch.domain import rides
from dispatch.domain.geo import LatLng
from dispatch.domain.rides import Offer, Ride, RideChange

NOW = 1_700_000_000_000
PICKUP = LatLng(52.52, 13.40)


def offer(driver: str, fence: int) -> Offer:
    return Offer(driver, fence, 420.0, 71, NOW + 15_000)


def offered(driver: str = "d1", fence: int = 7) -> Ride:
    return rides.request("r1", "u1", PICKUP, None, offer(driver, fence), NOW)


def facts(change: RideChange) -> tuple[object, ...]:
    return (
        change.offer_due,
        change.offer_closed,
        change.new_offer,
        change.ended,
        change.released,
        change.left_driver,
    )


def test_a_new_offered_ride_sets_its_timer_and_offers_its_driver() -> None:
    ride = offered()
    assert facts(RideChange(None, ride)) == (NOW + 15_000, False, True, False, None, None)


def test_a_new_ride_without_driver_ends_at_once_with_no_timer_to_clear() -> None:
    ride = rides.request("r1", "u1", PICKUP, None, None, NOW)
    assert facts(RideChange(None, ride)) == (None, False, False, True, None, None)


def test_accepting_closes_the_offer_and_keeps_the_reservation() -> None:
    before = offered()
    after = rides.accept(before, "d1", NOW + 1)
    assert facts(RideChange(before, after)) == (None, True, False, False, None, None)


def test_passing_on_releases_the_old_driver_and_offers_the_next() -> None:
    before = offered()
    after = rides.pass_on(before, offer("d2", 9), 3, NOW + 1)
    change = RideChange(before, after)
    assert facts(change) == (NOW + 15_000, False, True, False, ("d1", 7), "d1")


def test_passing_on_with_nobody_left_releases_and_ends() -> None:
    before = offered()
    after = rides.pass_on(before, None, 3, NOW + 1)
    assert facts(RideChange(before, after)) == (None, True, False, True, ("d1", 7), "d1")


def test_completing_releases_the_driver_who_stays_on_the_ride() -> None:
    ride = rides.accept(offered(), "d1", NOW + 1)
    for step in (rides.arrive, rides.start):
        ride = step(ride, "d1", NOW + 2)
    after = rides.complete(ride, "d1", NOW + 3)
    assert facts(RideChange(ride, after)) == (None, False, False, True, ("d1", 7), None)


def test_cancelling_an_offer_releases_and_ends_it() -> None:
    before = offered()
    after = rides.cancel(before, "u1", None, NOW + 1)
    assert facts(RideChange(before, after)) == (None, True, False, True, ("d1", 7), None)


def test_a_step_in_the_middle_of_the_ride_has_no_effect_but_the_notice() -> None:
    before = rides.accept(offered(), "d1", NOW + 1)
    after = rides.arrive(before, "d1", NOW + 2)
    assert facts(RideChange(before, after)) == (None, False, False, False, None, None)
