"""Driver states and the rules for moving between them.

The driver's own record is the authority on which ride it is in: one field, so a driver
can never be in two rides. A reservation carries a fencing token that every later step
(confirm on accept, release) must present together with the ride id; a step holding an
old token is refused. The in-memory store applies these functions; the Redis store's Lua
scripts implement the same rules, and one contract test suite holds both to them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from dispatch.domain.errors import DriverBusy


class DriverStatus(enum.StrEnum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    RESERVED = "reserved"  # holds an offer, until accepted, released or the lease runs out
    ON_RIDE = "on_ride"


@dataclass(frozen=True, slots=True)
class DriverRecord:
    driver_id: str
    status: DriverStatus = DriverStatus.AVAILABLE  # a driver never seen is available
    ride_id: str | None = None
    fence: int = 0
    lease_until: int = 0  # ms; only meaningful while RESERVED


def lease_expired(rec: DriverRecord, now_ms: int) -> bool:
    return rec.status is DriverStatus.RESERVED and rec.lease_until <= now_ms


def is_free(rec: DriverRecord, now_ms: int) -> bool:
    """Available, or holding a reservation whose lease ran out (its holder is gone)."""
    return rec.status is DriverStatus.AVAILABLE or lease_expired(rec, now_ms)


def next_fence(current: int, now_ms: int) -> int:
    # Strictly increasing, and above the clock in microseconds: a reservation lost in a
    # Redis failover cannot hand its token to the next one, which gets a larger value.
    return max(current + 1, now_ms * 1000)


def set_status(rec: DriverRecord, status: DriverStatus, now_ms: int) -> DriverRecord:
    if status not in (DriverStatus.AVAILABLE, DriverStatus.OFFLINE):
        raise ValueError("a driver may only set itself available or offline")
    if not is_free(rec, now_ms) and rec.status is not DriverStatus.OFFLINE:
        raise DriverBusy(f"driver is {rec.status.value} for ride {rec.ride_id}")
    return replace(rec, status=status, ride_id=None, lease_until=0)


def reserve(
    rec: DriverRecord, ride_id: str, now_ms: int, lease_until: int, fresh: bool
) -> DriverRecord | None:
    """Reserve for `ride_id`, or None: offline, busy, or no fix within the TTL (stale)."""
    if not fresh or not is_free(rec, now_ms):
        return None
    return DriverRecord(
        rec.driver_id, DriverStatus.RESERVED, ride_id, next_fence(rec.fence, now_ms), lease_until
    )


def holds(rec: DriverRecord, ride_id: str, fence: int) -> bool:
    return rec.ride_id == ride_id and rec.fence == fence


def confirm(rec: DriverRecord, ride_id: str, fence: int, now_ms: int) -> DriverRecord | None:
    """The driver accepted: RESERVED -> ON_RIDE, if the token is current and the lease alive."""
    if rec.status is DriverStatus.ON_RIDE and holds(rec, ride_id, fence):
        return rec  # a repeated confirm is a no-op, not an error
    if rec.status is not DriverStatus.RESERVED or not holds(rec, ride_id, fence):
        return None
    if lease_expired(rec, now_ms):
        return None
    return replace(rec, status=DriverStatus.ON_RIDE, lease_until=0)


def release(rec: DriverRecord, ride_id: str, fence: int) -> DriverRecord | None:
    """Back to AVAILABLE after a decline, timeout, completion or cancel; None if the token
    is old."""
    if rec.status not in (DriverStatus.RESERVED, DriverStatus.ON_RIDE):
        return None
    if not holds(rec, ride_id, fence):
        return None
    return replace(rec, status=DriverStatus.AVAILABLE, ride_id=None, lease_until=0)


def expire_lease(rec: DriverRecord, now_ms: int) -> DriverRecord | None:
    """Free a reservation whose holder never came back (crashed between steps)."""
    if not lease_expired(rec, now_ms):
        return None
    return replace(rec, status=DriverStatus.AVAILABLE, ride_id=None, lease_until=0)
