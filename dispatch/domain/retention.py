"""How long a finished ride request's traces are kept: its ride and the answer stored
under its Idempotency-Key.

A `no_driver` answer is kept for an hour, not a day. It held no driver, locked no price
and charged nothing, so a retry of its key after that runs the request afresh (under the
same ride id, derived from the key), which is what a client retrying an hour later wants
anyway. Every other answer is kept 24 h: it describes a ride someone may still act on.
Without this, each refused request leaves about 550 bytes for a day, the bulk of what one
rider token flooding ride requests can write (docs/api.md, "Idempotency")."""

from __future__ import annotations

from dispatch.domain.rides import Ride, RideStatus

ANSWER_KEEP_MS = 24 * 3600 * 1000
NO_DRIVER_KEEP_MS = 3600 * 1000


def kept_for(ride: Ride, otherwise_ms: int) -> int:
    """How long to keep `ride` (or its answer) once written, `otherwise_ms` unless it is
    a no_driver answer."""
    if ride.status is RideStatus.NO_DRIVER:
        return min(otherwise_ms, NO_DRIVER_KEEP_MS)
    return otherwise_ms
