"""Every ride transition, from every state: the allowed ones move, the others raise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from dispatch.domain import rides
from dispatch.domain.errors import InvalidTransition, NotParticipant, OfferExpired
from dispatch.domain.geo import LatLng
from dispatch.domain.rides import Offer, Ride, RideStatus

NOW = 1_700_000_000_000
PICKUP = LatLng(52.52, 13.40)


def offer(driver: str = "d1", fence: int = 7, expires: int = NOW + 15_000) -> Offer:
    return Offer(driver, fence, 420.0, 71, expires)


def offered_ride() -> Ride:
    return rides.request("r1", "rider1", PICKUP, None, offer(), NOW)


def in_status(status: RideStatus) -> Ride:
    ride = offered_ride()
    if status is RideStatus.NO_DRIVER:
        return rides.request("r1", "rider1", PICKUP, None, None, NOW)
    return replace(ride, status=status)


Step = Callable[[Ride], Ride]
STEPS: dict[str, tuple[Step, frozenset[RideStatus], RideStatus]] = {
    "accept": (
        lambda r: rides.accept(r, "d1", NOW + 1),
        frozenset({RideStatus.OFFERED}),
        RideStatus.ACCEPTED,
    ),
    "arrive": (
        lambda r: rides.arrive(r, "d1", NOW + 1),
        frozenset({RideStatus.ACCEPTED}),
        RideStatus.ARRIVED,
    ),
    "start": (
        lambda r: rides.start(r, "d1", NOW + 1),
        frozenset({RideStatus.ARRIVED}),
        RideStatus.IN_PROGRESS,
    ),
    "complete": (
        lambda r: rides.complete(r, "d1", NOW + 1),
        frozenset({RideStatus.IN_PROGRESS}),
        RideStatus.COMPLETED,
    ),
    "cancel_by_rider": (
        lambda r: rides.cancel(r, "rider1", None, NOW + 1),
        rides.CANCELLABLE,
        RideStatus.CANCELLED,
    ),
    "cancel_by_driver": (
        lambda r: rides.cancel(r, None, "d1", NOW + 1),
        rides.CANCELLABLE,
        RideStatus.CANCELLED,
    ),
    "pass_on": (
        lambda r: rides.pass_on(r, offer("d2"), 3, NOW + 1),
        frozenset({RideStatus.OFFERED}),
        RideStatus.OFFERED,
    ),
}
CASES = [(name, status) for name in STEPS for status in RideStatus]


@pytest.mark.parametrize(("step", "status"), CASES)
def test_each_step_moves_only_from_its_allowed_states(step: str, status: RideStatus) -> None:
    fn, allowed, target = STEPS[step]
    ride = in_status(status)
    if status in allowed:
        after = fn(ride)
        assert after.status is target
        assert after.version == ride.version + 1
        assert after.updated_at == NOW + 1
    else:
        with pytest.raises((InvalidTransition, NotParticipant)):
            fn(ride)


def test_request_with_a_candidate_is_offered_to_it_with_one_attempt() -> None:
    ride = offered_ride()
    assert ride.status is RideStatus.OFFERED
    assert (ride.driver_id, ride.fence, ride.attempts) == ("d1", 7, 1)
    assert ride.offer_expires_at == NOW + 15_000
    assert ride.active


def test_request_without_a_candidate_is_no_driver_and_terminal() -> None:
    ride = rides.request("r1", "rider1", PICKUP, None, None, NOW)
    assert ride.status is RideStatus.NO_DRIVER
    assert ride.driver_id is None and not ride.active


def test_steps_by_another_driver_are_refused_as_not_participant() -> None:
    ride = offered_ride()
    with pytest.raises(NotParticipant):
        rides.accept(ride, "d2", NOW)
    with pytest.raises(NotParticipant):
        rides.check_decline(ride, "d2")
    accepted = rides.accept(ride, "d1", NOW)
    for step in (rides.arrive, rides.start, rides.complete):
        with pytest.raises(NotParticipant):
            step(accepted, "d2", NOW)
    with pytest.raises(NotParticipant):
        rides.cancel(accepted, None, "d2", NOW)


def test_another_rider_cannot_cancel() -> None:
    with pytest.raises(NotParticipant):
        rides.cancel(offered_ride(), "rider2", None, NOW)


def test_accept_after_the_offer_expired_is_refused() -> None:
    ride = offered_ride()
    assert not rides.offer_expired(ride, NOW + 14_999)
    assert rides.offer_expired(ride, NOW + 15_000)
    with pytest.raises(OfferExpired):
        rides.accept(ride, "d1", NOW + 15_000)


def test_pass_on_offers_the_next_driver_and_remembers_who_declined() -> None:
    ride = rides.pass_on(offered_ride(), offer("d2", fence=9), 3, NOW + 5)
    assert (ride.status, ride.driver_id, ride.fence, ride.attempts) == (
        RideStatus.OFFERED,
        "d2",
        9,
        2,
    )
    assert ride.declined == ("d1",)


def test_pass_on_never_offers_a_driver_who_declined() -> None:
    ride = rides.pass_on(offered_ride(), offer("d2"), 3, NOW)
    with pytest.raises(ValueError):
        rides.pass_on(ride, offer("d1"), 3, NOW)


def test_pass_on_without_candidate_is_no_driver() -> None:
    ride = rides.pass_on(offered_ride(), None, 3, NOW)
    assert ride.status is RideStatus.NO_DRIVER
    assert ride.driver_id is None and ride.fence is None and ride.declined == ("d1",)


def test_pass_on_after_max_attempts_is_no_driver_even_with_a_candidate() -> None:
    ride = offered_ride()
    ride = rides.pass_on(ride, offer("d2"), 3, NOW)
    ride = rides.pass_on(ride, offer("d3"), 3, NOW)
    assert ride.attempts == 3
    assert not rides.may_reoffer(ride, 3)
    final = rides.pass_on(ride, offer("d4"), 3, NOW)
    assert final.status is RideStatus.NO_DRIVER
    assert final.declined == ("d1", "d2", "d3")


def test_cancel_records_who_cancelled_and_keeps_the_driver() -> None:
    accepted = rides.accept(offered_ride(), "d1", NOW)
    by_driver = rides.cancel(accepted, None, "d1", NOW)
    assert by_driver.cancelled_by == "driver" and by_driver.driver_id == "d1"
    assert rides.cancel(accepted, "rider1", None, NOW).cancelled_by == "rider"


def test_a_ride_in_progress_cannot_be_cancelled_by_anyone() -> None:
    ride = in_status(RideStatus.IN_PROGRESS)
    with pytest.raises(InvalidTransition):
        rides.cancel(ride, "rider1", None, NOW)
    with pytest.raises(InvalidTransition):
        rides.cancel(ride, None, "d1", NOW)


def test_the_whole_happy_path() -> None:
    ride = offered_ride()
    for step in (rides.accept, rides.arrive, rides.start, rides.complete):
        ride = step(ride, "d1", NOW)
    assert ride.status is RideStatus.COMPLETED and ride.version == 5 and not ride.active
