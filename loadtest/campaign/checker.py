"""The history checker: from the recorded operations and what Redis holds at the end,
what went wrong. Pure: tested on small hand-made histories (tests/unit/loadtest).

- Double bookings, by the acknowledged answers: a driver holds a ride from the end of
  its accept answered 200 until the first try (whatever its answer) to complete or cancel
  it, or the first answer telling it the ride is gone or not its own (404, 403), or the
  end of the run. Two such periods of one driver that overlap are a double booking,
  whatever Redis says at the end.
- Acknowledged writes lost: a ride answered 201 missing at the end; an accept answered
  200 whose ride is not, at the end, that driver's (committed, completed, or cancelled by
  a later try); a completion or cancel answered 200 whose ride is not so at the end.
- Stuck rides: an offer standing past its expiry by more than `slack_ms` (its timer
  should have handed it on), a searching ride, a committed ride its driver's record does
  not hold.
- Stale fixes: a fix refused as stale with seq s needs a fix of that driver with a seq of
  at least s sent before the refusal's answer. (Accepted fixes lost are counted, not
  judged: the index is soft state, its writes never wait for replicas.)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from loadtest.campaign.history import (
    ACCEPT,
    CANCEL,
    COMPLETE,
    ENDING,
    FIX,
    REQUEST,
    Fault,
    FinalDriver,
    FinalRide,
    Op,
)

COMMITTED = {"accepted", "arrived", "in_progress"}
HELD_AFTER_ACCEPT = COMMITTED | {"completed"}


@dataclass(frozen=True, slots=True)
class DoubleBooking:
    driver_id: str
    first: str  # ride ids
    second: str
    at: float  # when the second period began (its accept's answer)


@dataclass(frozen=True, slots=True)
class Lost:
    kind: str  # request, accept, complete, cancel
    ride_id: str
    acknowledged_at: float
    final: str  # the ride's status at the end, or "missing"


@dataclass
class Findings:
    double_bookings: list[DoubleBooking] = field(default_factory=list)
    lost: list[Lost] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    stale_unexplained: list[Op] = field(default_factory=list)
    fixes_lost: int = 0


def check(
    ops: Sequence[Op],
    rides: dict[str, FinalRide],
    drivers: dict[str, FinalDriver],
    run_end: float,
    now_ms: int,
    slack_ms: int = 10_000,
) -> Findings:
    f = Findings()
    f.double_bookings = double_bookings(ops, run_end)
    f.lost = lost_writes(ops, rides)
    f.stuck = stuck_rides(rides, drivers, now_ms, slack_ms)
    f.stale_unexplained, f.fixes_lost = stale_fixes(ops, drivers)
    return f


def held_periods(ops: Sequence[Op], run_end: float) -> dict[str, list[tuple[float, float, str]]]:
    """driver -> [(from, to, ride)]: when each acknowledged accept surely held its driver."""
    first_end_try: dict[str, float] = {}
    for op in ops:
        if op.ride_id is None:
            continue
        if op.kind in ENDING:
            first_end_try[op.ride_id] = min(first_end_try.get(op.ride_id, run_end), op.start)
        elif op.kind != ACCEPT and op.status in (403, 404):  # the driver is told it is over
            first_end_try[op.ride_id] = min(first_end_try.get(op.ride_id, run_end), op.end)
    periods: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for op in ops:
        if op.kind == ACCEPT and op.acknowledged(200) and op.driver_id and op.ride_id:
            until = first_end_try.get(op.ride_id, run_end)
            if until > op.end:
                periods[op.driver_id].append((op.end, until, op.ride_id))
    return periods


def double_bookings(ops: Sequence[Op], run_end: float) -> list[DoubleBooking]:
    found: list[DoubleBooking] = []
    for driver, periods in held_periods(ops, run_end).items():
        periods.sort()
        for i, (_, until, ride) in enumerate(periods):
            for later_start, _, other in periods[i + 1 :]:
                if later_start >= until:
                    break
                if other != ride:
                    found.append(DoubleBooking(driver, ride, other, later_start))
    return found


def lost_writes(ops: Sequence[Op], rides: dict[str, FinalRide]) -> list[Lost]:
    ending_tried: dict[str, float] = {}
    for op in ops:
        if op.kind in ENDING and op.ride_id is not None:
            ending_tried[op.ride_id] = min(ending_tried.get(op.ride_id, op.start), op.start)
    lost: list[Lost] = []
    for op in ops:
        if op.ride_id is None or op.status != {REQUEST: 201}.get(op.kind, 200):
            continue
        ride = rides.get(op.ride_id)
        final = "missing" if ride is None else ride.status
        if op.kind == REQUEST:
            ok = ride is not None
        elif op.kind == ACCEPT:
            ok = ride is not None and (
                (ride.status in HELD_AFTER_ACCEPT and ride.driver_id == op.driver_id)
                or (ride.status == "cancelled" and op.ride_id in ending_tried)
            )
        elif op.kind == COMPLETE:
            ok = final == "completed"
        elif op.kind == CANCEL:
            ok = final == "cancelled"
        else:
            continue
        if not ok:
            lost.append(Lost(op.kind, op.ride_id, op.end, final))
    return lost


def stuck_rides(
    rides: dict[str, FinalRide], drivers: dict[str, FinalDriver], now_ms: int, slack_ms: int
) -> list[str]:
    stuck = []
    for ride in rides.values():
        if ride.status == "offered":
            if (ride.offer_expires_at or 0) + slack_ms < now_ms:
                stuck.append(ride.id)
        elif ride.status == "searching":
            stuck.append(ride.id)
        elif ride.status in COMMITTED:
            holder = drivers.get(ride.driver_id or "")
            if holder is None or holder.ride != ride.id or holder.status != "on_ride":
                stuck.append(ride.id)
    return sorted(stuck)


def stale_fixes(ops: Sequence[Op], drivers: dict[str, FinalDriver]) -> tuple[list[Op], int]:
    sent: dict[str, list[tuple[float, int, int]]] = defaultdict(list)  # start, seq, which
    for i, op in enumerate(ops):
        if op.kind == FIX and op.driver_id and op.seq is not None:
            sent[op.driver_id].append((op.start, op.seq, i))
    unexplained = []
    newest_acked: dict[str, int] = {}
    for i, op in enumerate(ops):
        if op.kind != FIX or not op.driver_id or op.seq is None:
            continue
        if op.status == 409 and op.error == "stale":
            seq = op.seq
            if not any(t < op.end and s >= seq and j != i for t, s, j in sent[op.driver_id]):
                unexplained.append(op)
        elif op.status == 202:
            newest_acked[op.driver_id] = max(newest_acked.get(op.driver_id, 0), op.seq)
    lost = sum(
        1
        for d, seq in newest_acked.items()
        if d in drivers and drivers[d].seq is not None and (drivers[d].seq or 0) < seq
    )
    return unexplained, lost


# -- the report, per fault kind -------------------------------------------------------------


def windows(faults: Sequence[Fault], run_end: float) -> list[tuple[float, float, str]]:
    """Each fault's window: from its injection to the next one's (or the run's end)."""
    ordered = sorted(faults, key=lambda x: x.at)
    out = []
    for i, fault in enumerate(ordered):
        until = ordered[i + 1].at if i + 1 < len(ordered) else run_end
        out.append((fault.at, until, fault.kind))
    return out


def _kind_at(spans: list[tuple[float, float, str]], t: float) -> str:
    for start, until, kind in spans:
        if start <= t < until:
            return kind
    return "none"  # before the first fault


def unavailability(ops: Iterable[Op]) -> dict[str, float]:
    """Per step that failed at first: from its first failed try to its first answer that
    was not a failure (or its last try). Keyed by step."""
    by_step: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        by_step[op.step].append(op)
    out: dict[str, float] = {}
    for step, tries in by_step.items():
        tries.sort(key=lambda o: o.start)
        if not tries[0].failed:
            continue
        answered = next((o for o in tries if not o.failed), tries[-1])
        out[step] = answered.end - tries[0].start
    return out


@dataclass
class Row:
    """One line of the report: what the faults of one kind did."""

    faults: int = 0
    operations: int = 0
    errors_by_status: Counter[str] = field(default_factory=Counter)
    acknowledged_writes_lost: int = 0
    double_bookings: int = 0
    longest_unavailability_s: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "faults": self.faults,
            "operations": self.operations,
            "errors_by_status": dict(sorted(self.errors_by_status.items())),
            "acknowledged_writes_lost": self.acknowledged_writes_lost,
            "double_bookings": self.double_bookings,
            "longest_unavailability_s": round(self.longest_unavailability_s, 2),
        }


def report(
    ops: Sequence[Op], faults: Sequence[Fault], findings: Findings, run_end: float
) -> dict[str, Row]:
    """Per fault kind ("none": before the first fault). An operation, a lost write or a
    double booking counts in the window of the fault it happened after."""
    spans = windows(faults, run_end)
    rows: dict[str, Row] = defaultdict(Row)
    for fault in faults:
        rows[fault.kind].faults += 1
    first_try: dict[str, Op] = {}
    for op in sorted(ops, key=lambda o: o.start):
        r = rows[_kind_at(spans, op.start)]
        r.operations += 1
        if op.failed or (op.status >= 400 and op.error != "stale"):  # stale: sent so
            r.errors_by_status[str(op.status) + (f" {op.error}" if op.error else "")] += 1
        first_try.setdefault(op.step, op)
    for lost in findings.lost:
        rows[_kind_at(spans, lost.acknowledged_at)].acknowledged_writes_lost += 1
    for booking in findings.double_bookings:
        rows[_kind_at(spans, booking.at)].double_bookings += 1
    for step, seconds in unavailability(ops).items():
        r = rows[_kind_at(spans, first_try[step].start)]
        r.longest_unavailability_s = max(r.longest_unavailability_s, seconds)
    return dict(rows)
