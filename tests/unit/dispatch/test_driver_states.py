"""Driver status rules: reservation, confirmation, release and the fencing token."""

from __future__ import annotations

import pytest

from dispatch.domain import drivers
from dispatch.domain.drivers import DriverRecord, DriverStatus
from dispatch.domain.errors import DriverBusy

NOW = 1_700_000_000_000


def reserved(lease: int = NOW + 30_000) -> DriverRecord:
    rec = drivers.reserve(DriverRecord("d1"), "r1", NOW, lease, fresh=True)
    assert rec is not None
    return rec


def test_a_driver_never_seen_is_available() -> None:
    assert DriverRecord("d1").status is DriverStatus.AVAILABLE


def test_reserve_takes_an_available_fresh_driver_and_issues_a_larger_fence() -> None:
    rec = reserved()
    assert (rec.status, rec.ride_id, rec.lease_until) == (DriverStatus.RESERVED, "r1", NOW + 30_000)
    assert rec.fence >= NOW * 1000


@pytest.mark.parametrize(
    "status", [DriverStatus.OFFLINE, DriverStatus.RESERVED, DriverStatus.ON_RIDE]
)
def test_reserve_refuses_a_driver_that_is_not_available(status: DriverStatus) -> None:
    rec = DriverRecord("d1", status, "r0", 5, NOW + 10_000)
    assert drivers.reserve(rec, "r1", NOW, NOW + 30_000, fresh=True) is None


def test_reserve_refuses_a_stale_driver() -> None:
    assert drivers.reserve(DriverRecord("d1"), "r1", NOW, NOW + 30_000, fresh=False) is None


def test_reserve_reclaims_a_reservation_whose_lease_ran_out_with_a_new_fence() -> None:
    old = reserved(lease=NOW + 10)
    new = drivers.reserve(old, "r2", NOW + 10, NOW + 40_000, fresh=True)
    assert new is not None and new.ride_id == "r2" and new.fence > old.fence


def test_fences_increase_even_when_the_clock_goes_back() -> None:
    first = reserved()
    released = drivers.release(first, "r1", first.fence)
    assert released is not None
    again = drivers.reserve(released, "r2", NOW - 60_000, NOW + 30_000, fresh=True)
    assert again is not None and again.fence == first.fence + 1


def test_confirm_needs_the_current_ride_and_fence_and_a_live_lease() -> None:
    rec = reserved()
    assert drivers.confirm(rec, "r1", rec.fence - 1, NOW) is None
    assert drivers.confirm(rec, "r2", rec.fence, NOW) is None
    assert drivers.confirm(rec, "r1", rec.fence, NOW + 30_000) is None
    on_ride = drivers.confirm(rec, "r1", rec.fence, NOW)
    assert on_ride is not None and on_ride.status is DriverStatus.ON_RIDE
    assert drivers.confirm(on_ride, "r1", rec.fence, NOW) == on_ride


def test_release_needs_the_current_ride_and_fence() -> None:
    rec = reserved()
    assert drivers.release(rec, "r1", rec.fence + 1) is None
    assert drivers.release(rec, "r9", rec.fence) is None
    free = drivers.release(rec, "r1", rec.fence)
    assert free is not None and free.status is DriverStatus.AVAILABLE and free.ride_id is None
    assert free.fence == rec.fence  # the token only ever grows
    assert drivers.release(free, "r1", rec.fence) is None


def test_release_frees_a_driver_on_a_ride() -> None:
    rec = reserved()
    on_ride = drivers.confirm(rec, "r1", rec.fence, NOW)
    assert on_ride is not None
    assert drivers.release(on_ride, "r1", rec.fence) is not None


def test_expire_lease_frees_only_an_expired_reservation() -> None:
    rec = reserved(lease=NOW + 100)
    assert drivers.expire_lease(rec, NOW + 99) is None
    freed = drivers.expire_lease(rec, NOW + 100)
    assert freed is not None and freed.status is DriverStatus.AVAILABLE
    on_ride = drivers.confirm(rec, "r1", rec.fence, NOW)
    assert on_ride is not None and drivers.expire_lease(on_ride, NOW + 10**9) is None


@pytest.mark.parametrize("target", [DriverStatus.AVAILABLE, DriverStatus.OFFLINE])
def test_an_idle_driver_may_go_available_or_offline(target: DriverStatus) -> None:
    for start in (DriverStatus.AVAILABLE, DriverStatus.OFFLINE):
        assert drivers.set_status(DriverRecord("d1", start), target, NOW).status is target


def test_a_busy_driver_cannot_change_its_status() -> None:
    rec = reserved()
    with pytest.raises(DriverBusy):
        drivers.set_status(rec, DriverStatus.OFFLINE, NOW)
    on_ride = drivers.confirm(rec, "r1", rec.fence, NOW)
    assert on_ride is not None
    with pytest.raises(DriverBusy):
        drivers.set_status(on_ride, DriverStatus.AVAILABLE, NOW)


def test_a_driver_cannot_set_itself_reserved() -> None:
    with pytest.raises(ValueError):
        drivers.set_status(DriverRecord("d1"), DriverStatus.RESERVED, NOW)
