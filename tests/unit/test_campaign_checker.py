"""The failover campaign's history checker on small hand-made histories: each finding
is there when the history shows it, and not when it does not."""

from __future__ import annotations

from loadtest.campaign.checker import check, report, unavailability
from loadtest.campaign.history import Fault, FinalDriver, FinalRide, Op

NOW_MS = 1_000_000


def op(kind: str, start: float, end: float, status: int, **kw: object) -> Op:
    step = str(kw.pop("step", f"{kind}-{kw.get('ride_id')}-{start}"))
    return Op(kind, step, start, end, status, **kw)  # type: ignore[arg-type]


def accepted(ride: str, driver: str, status: str = "accepted") -> FinalRide:
    return FinalRide(ride, status, driver)


def on(driver: str, ride: str | None, status: str = "on_ride") -> FinalDriver:
    return FinalDriver(driver, status, ride)


def test_a_clean_ride_has_no_findings() -> None:
    ops = [
        op("request", 0, 0.1, 201, ride_id="r1", driver_id="d1", ride_status="offered"),
        op("accept", 0.2, 0.3, 200, ride_id="r1", driver_id="d1"),
        op("complete", 1.0, 1.1, 200, ride_id="r1", driver_id="d1"),
        op("request", 1.2, 1.3, 201, ride_id="r2", driver_id="d1", ride_status="offered"),
        op("accept", 1.4, 1.5, 200, ride_id="r2", driver_id="d1"),
    ]
    rides = {"r1": FinalRide("r1", "completed", "d1"), "r2": accepted("r2", "d1")}
    f = check(ops, rides, {"d1": on("d1", "r2")}, run_end=2.0, now_ms=NOW_MS)
    assert (f.double_bookings, f.lost, f.stuck, f.stale_unexplained) == ([], [], [], [])


def test_two_acknowledged_accepts_of_one_driver_that_overlap_are_a_double_booking() -> None:
    # r1's accept was acknowledged, then lost with its reservation; d1 is offered r2.
    ops = [
        op("accept", 0.2, 0.3, 200, ride_id="r1", driver_id="d1"),
        op("accept", 1.4, 1.5, 200, ride_id="r2", driver_id="d1"),
        op("complete", 3.0, 3.1, 200, ride_id="r2", driver_id="d1"),
    ]
    rides = {
        "r1": FinalRide("r1", "offered", "d1", NOW_MS),
        "r2": FinalRide("r2", "completed", "d1"),
    }
    f = check(ops, rides, {"d1": on("d1", None, "available")}, run_end=4.0, now_ms=NOW_MS)
    assert [(b.driver_id, b.first, b.second) for b in f.double_bookings] == [("d1", "r1", "r2")]
    assert [(x.kind, x.ride_id, x.final) for x in f.lost] == [("accept", "r1", "offered")]


def test_a_ride_ended_before_the_next_accept_is_no_double_booking() -> None:
    # The completion's answer was lost (503) but it was tried before the next accept.
    ops = [
        op("accept", 0.2, 0.3, 200, ride_id="r1", driver_id="d1"),
        op("complete", 1.0, 1.3, 503, ride_id="r1", driver_id="d1", error="backend_unavailable"),
        op("accept", 1.4, 1.5, 200, ride_id="r2", driver_id="d1"),
    ]
    rides = {"r1": FinalRide("r1", "completed", "d1"), "r2": accepted("r2", "d1")}
    f = check(ops, rides, {"d1": on("d1", "r2")}, run_end=2.0, now_ms=NOW_MS)
    assert f.double_bookings == [] and f.lost == []


def test_a_ride_the_driver_is_told_is_gone_is_held_no_longer() -> None:
    # r1 and its accept were lost; the driver's next step on it is answered 404.
    ops = [
        op("accept", 0.2, 0.3, 200, ride_id="r1", driver_id="d1"),
        op("arrive", 0.8, 0.9, 404, ride_id="r1", driver_id="d1", error="not_found"),
        op("accept", 1.4, 1.5, 200, ride_id="r2", driver_id="d1"),
    ]
    f = check(ops, {"r2": accepted("r2", "d1")}, {"d1": on("d1", "r2")}, 2.0, NOW_MS)
    assert f.double_bookings == []
    assert [(x.kind, x.ride_id) for x in f.lost] == [("accept", "r1")]


def test_acknowledged_writes_missing_at_the_end_are_lost() -> None:
    ops = [
        op("request", 0, 0.1, 201, ride_id="r1", driver_id="d1"),
        op("request", 0, 0.1, 201, ride_id="r2", driver_id="d2"),
        op("complete", 0.5, 0.6, 200, ride_id="r2", driver_id="d2"),
        op("request", 0, 0.1, 503, ride_id=None, error="durability_timeout"),  # not acked
    ]
    rides = {"r2": FinalRide("r2", "in_progress", "d2")}
    f = check(ops, rides, {"d2": on("d2", "r2")}, run_end=1.0, now_ms=NOW_MS)
    assert sorted((x.kind, x.ride_id, x.final) for x in f.lost) == [
        ("complete", "r2", "in_progress"),
        ("request", "r1", "missing"),
    ]


def test_an_accepted_ride_cancelled_later_is_not_lost() -> None:
    ops = [
        op("accept", 0.2, 0.3, 200, ride_id="r1", driver_id="d1"),
        op("cancel", 0.5, 0.6, 0, ride_id="r1"),  # no answer, but it took effect
    ]
    f = check(ops, {"r1": FinalRide("r1", "cancelled", "d1")}, {}, run_end=1.0, now_ms=NOW_MS)
    assert f.lost == []


def test_stuck_rides_an_old_offer_and_a_committed_ride_its_driver_does_not_hold() -> None:
    rides = {
        "old": FinalRide("old", "offered", "d1", NOW_MS - 60_000),
        "live": FinalRide("live", "offered", "d2", NOW_MS + 1_000),
        "orphan": accepted("orphan", "d3"),
        "held": accepted("held", "d4"),
    }
    drivers = {"d3": on("d3", None, "available"), "d4": on("d4", "held")}
    f = check([], rides, drivers, run_end=1.0, now_ms=NOW_MS)
    assert f.stuck == ["old", "orphan"]


def test_a_stale_answer_needs_a_newer_fix_sent_before_it() -> None:
    ops = [
        op("fix", 0.0, 0.1, 202, driver_id="d1", seq=5),
        op("fix", 0.2, 0.3, 409, driver_id="d1", seq=4, error="stale", stored_seq=5),
        op("fix", 0.4, 0.5, 409, driver_id="d1", seq=9, error="stale", stored_seq=5),
    ]
    f = check(ops, {}, {"d1": FinalDriver("d1", "available", None, 5)}, 1.0, NOW_MS)
    assert [o.seq for o in f.stale_unexplained] == [9]
    assert f.fixes_lost == 0
    f = check(ops, {}, {"d1": FinalDriver("d1", "available", None, 3)}, 1.0, NOW_MS)
    assert f.fixes_lost == 1  # seq 5 was accepted, 3 is stored: the index lost it


def test_unavailability_runs_from_a_steps_first_failure_to_its_answer() -> None:
    ops = [
        op("request", 1.0, 1.5, 503, step="s1"),
        op("request", 2.0, 2.5, 0, step="s1"),
        op("request", 3.0, 3.2, 201, step="s1", ride_id="r1"),
        op("request", 1.0, 1.1, 201, step="s2", ride_id="r2"),
    ]
    assert unavailability(ops) == {"s1": 3.2 - 1.0}


def test_the_report_counts_per_fault_kind() -> None:
    ops = [
        op("request", 0.5, 0.6, 201, step="a", ride_id="r0"),
        op("request", 1.0, 1.5, 503, step="s1", error="backend_unavailable"),
        op("request", 2.0, 2.2, 201, step="s1", ride_id="r1"),
        op("request", 5.0, 5.1, 0, step="s2"),
        op("request", 5.5, 5.6, 201, step="s2", ride_id="r2"),
    ]
    faults = [Fault("kill_master", 0.9, 3.0), Fault("kill_replica", 4.0, 6.0)]
    rides = {r: FinalRide(r, "offered", "d", NOW_MS) for r in ("r0", "r1")}  # r2 lost
    findings = check(ops, rides, {}, run_end=7.0, now_ms=NOW_MS)
    rows = {k: v.to_json() for k, v in report(ops, faults, findings, 7.0).items()}
    assert rows["none"]["operations"] == 1
    assert rows["kill_master"] == {
        "faults": 1,
        "operations": 2,
        "errors_by_status": {"503 backend_unavailable": 1},
        "acknowledged_writes_lost": 0,
        "double_bookings": 0,
        "longest_unavailability_s": 1.2,
    }
    assert rows["kill_replica"]["acknowledged_writes_lost"] == 1
    assert rows["kill_replica"]["errors_by_status"] == {"0": 1}
    assert rows["kill_replica"]["longest_unavailability_s"] == 0.6
