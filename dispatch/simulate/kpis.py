"""What a policy achieved: riders matched, pickup ETAs, time and distance, rider waits,
declines. Every rider counts once, whatever happened to its ride."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dispatch.domain.rides import Ride, RideStatus


@dataclass
class _Rider:
    created_ms: int
    first_offer_ms: int | None = None
    accepted: Ride | None = None  # the version that was accepted
    no_driver: bool = False
    pickup_ms: int | None = None


def _mean(xs: list[float]) -> float | None:
    return round(sum(xs) / len(xs), 1) if xs else None


def _p95(xs: list[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return round(s[math.ceil(0.95 * len(s)) - 1], 1)


@dataclass
class Tally:
    riders: dict[str, _Rider] = field(default_factory=dict)
    declined: int = 0
    ignored: int = 0

    def requested(self, ride: Ride) -> None:
        self.riders[ride.id] = _Rider(ride.created_at)

    def changed(self, ride: Ride, now_ms: int) -> None:
        r = self.riders.get(ride.id)
        if r is None:
            r = self.riders[ride.id] = _Rider(ride.created_at)
        if ride.status is RideStatus.OFFERED and r.first_offer_ms is None:
            r.first_offer_ms = ride.updated_at
        elif ride.status is RideStatus.ACCEPTED:
            r.accepted = ride
        elif ride.status is RideStatus.NO_DRIVER:
            r.no_driver = True

    def picked_up(self, ride: Ride, took_ms: int) -> None:
        r = self.riders.get(ride.id)
        if r is not None:
            r.pickup_ms = took_ms

    def kpis(self) -> dict[str, Any]:
        riders = list(self.riders.values())
        accepted = [r.accepted for r in riders if r.accepted is not None]
        etas = [float(a.eta_s) for a in accepted if a.eta_s is not None]
        dists = [a.pickup_distance_m for a in accepted if a.pickup_distance_m is not None]
        took = [r.pickup_ms / 1000 for r in riders if r.pickup_ms is not None]
        waits = [
            (r.first_offer_ms - r.created_ms) / 1000 for r in riders if r.first_offer_ms is not None
        ]
        return {
            "requests": len(riders),
            "matched": len(accepted),
            "matched_share": round(len(accepted) / len(riders), 3) if riders else None,
            "no_driver": sum(r.no_driver and r.accepted is None for r in riders),
            "pickup_eta_s_mean": _mean(etas),
            "pickup_eta_s_p95": _p95(etas),
            "pickup_time_s_mean": _mean(took),
            "pickup_time_s_p95": _p95(took),
            "pickup_distance_m_mean": _mean(dists),
            "pickup_distance_m_p95": _p95(dists),
            "rider_wait_s_mean": _mean(waits),
            "rider_wait_s_p95": _p95(waits),
            "offers_declined": self.declined,
            "offers_timed_out": self.ignored,
        }
