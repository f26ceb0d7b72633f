"""The simulated city: where riders ask (hot spots, a rush hour), where drivers start,
and how winding its roads are (the truth the ETA model has to learn)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from dispatch.demo.city import offset
from dispatch.domain.geo import LatLng, haversine_m

CENTRE = LatLng(52.5200, 13.4050)


@dataclass(frozen=True, slots=True)
class Request:
    at_ms: int  # since the start of the run
    rider_id: str
    pickup: LatLng
    dropoff: LatLng


@dataclass(frozen=True, slots=True)
class SimCity:
    half_side_m: float = 5_000.0
    # Hot spots (north, east metres from the centre; radius m): stations and a nightlife
    # street, where riders crowd.
    hot_spots: tuple[tuple[float, float, float], ...] = (
        (500.0, -2_500.0, 400.0),
        (-1_500.0, 1_800.0, 500.0),
        (2_200.0, 1_200.0, 400.0),
    )
    hot_share: float = 0.55  # of requests
    base_per_s: float = 0.25  # requests per second outside the rush hour
    rush_per_s: float = 0.55  # inside it
    rush_from_s: float = 1_200.0  # the rush hour's part of the run
    rush_to_s: float = 2_400.0
    speed_mps: float = 8.0  # along the roads
    old_town_radius_m: float = 2_000.0  # winding lanes around the centre ...
    old_town_circuity: float = 1.7
    circuity: float = 1.25  # ... a grid beyond

    def rate_per_s(self, t_s: float) -> float:
        return self.rush_per_s if self.rush_from_s <= t_s < self.rush_to_s else self.base_per_s

    def random_point(self, rng: random.Random) -> LatLng:
        h = self.half_side_m
        return offset(CENTRE, rng.uniform(-h, h), rng.uniform(-h, h))

    def pickup_point(self, rng: random.Random) -> LatLng:
        if rng.random() < self.hot_share:
            north, east, radius = rng.choice(self.hot_spots)
            angle, dist = rng.uniform(0, 2 * math.pi), radius * math.sqrt(rng.random())
            return offset(CENTRE, north + dist * math.cos(angle), east + dist * math.sin(angle))
        return self.random_point(rng)

    def dropoff_point(self, rng: random.Random, pickup: LatLng) -> LatLng:
        angle, dist = rng.uniform(0, 2 * math.pi), rng.uniform(1_000, 5_000)
        return offset(pickup, dist * math.cos(angle), dist * math.sin(angle))

    def true_circuity(self, at: LatLng) -> float:
        inside = haversine_m(at, CENTRE) < self.old_town_radius_m
        return self.old_town_circuity if inside else self.circuity

    def requests(self, rng: random.Random, seconds: int) -> list[Request]:
        """The run's demand, drawn once per seed: every policy sees the same riders."""
        out: list[Request] = []
        for s in range(seconds):
            for _ in range(_poisson(rng, self.rate_per_s(s))):
                pickup = self.pickup_point(rng)
                at = s * 1000 + rng.randrange(1000)
                out.append(Request(at, f"u{len(out)}", pickup, self.dropoff_point(rng, pickup)))
        return sorted(out, key=lambda r: r.at_ms)


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
