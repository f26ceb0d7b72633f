"""The shared timers' items: an offer that runs out, a reservation lease to check.

The deadline queue stores opaque strings; these are the only two kinds the use cases
schedule, and the only place that knows how they are spelled."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OfferTimeout:
    ride_id: str

    @property
    def key(self) -> str:
        return f"r:{self.ride_id}"


@dataclass(frozen=True, slots=True)
class LeaseCheck:
    driver_id: str

    @property
    def key(self) -> str:
        return f"l:{self.driver_id}"


Timer = OfferTimeout | LeaseCheck


def parse_timer(key: str) -> Timer | None:
    kind, _, ident = key.partition(":")
    if kind == "r":
        return OfferTimeout(ident)
    if kind == "l":
        return LeaseCheck(ident)
    return None
