"""What the campaign records: every client operation with its start, its end and its
answer, and what Redis holds at the end. Times are seconds since the campaign started."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Operation kinds
REQUEST = "request"  # POST /v1/rides (with an Idempotency-Key)
ACCEPT = "accept"
ARRIVE = "arrive"
START = "start"
COMPLETE = "complete"
CANCEL = "cancel"
FIX = "fix"  # POST /v1/drivers/{id}/location

ENDING = (COMPLETE, CANCEL)  # steps that may end a ride


@dataclass(frozen=True, slots=True)
class Op:
    kind: str
    step: str  # the client's step: every retry of one step shares it
    start: float
    end: float
    status: int  # HTTP status; 0: no answer (connection refused or cut, client timeout)
    error: str | None = None  # the error code of a 4xx or 5xx body
    ride_id: str | None = None
    driver_id: str | None = None
    ride_status: str | None = None  # the ride's status in a 2xx answer
    seq: int | None = None  # a fix's seq
    stored_seq: int | None = None  # a stale fix's answer: the stored seq

    @property
    def failed(self) -> bool:
        """No answer or a 5xx: the client does not know whether it took effect."""
        return self.status == 0 or self.status >= 500

    def acknowledged(self, status: int) -> bool:
        return self.status == status

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Op:
        return Op(**d)


@dataclass(frozen=True, slots=True)
class FinalRide:
    id: str
    status: str
    driver_id: str | None
    offer_expires_at: int | None = None  # ms


@dataclass(frozen=True, slots=True)
class FinalDriver:
    id: str
    status: str
    ride: str | None
    seq: int | None = None  # the stored fix's seq, None when it expired


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # kill_master, pause_master, kill_replica, kill_instance
    at: float  # when it was injected
    healed: float  # when the healing finished
    target: str = ""
