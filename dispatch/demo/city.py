"""A small square of Berlin for the demo: random points, a hot spot where many riders
ask at once (a station at rush hour: it surges), and straight-line driving."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from dispatch.domain.geo import LatLng, haversine_m

CENTRE = LatLng(52.5200, 13.4050)
HALF_SIDE_M = 3_000.0
HOT_SPOT = LatLng(52.5251, 13.3694)  # the main station, 2.5 km west of the centre
HOT_SHARE = 0.4  # of pickups, within HOT_RADIUS_M of the hot spot
HOT_RADIUS_M = 250.0
M_PER_DEG_LAT = 111_195.0


@dataclass(frozen=True, slots=True)
class City:
    centre: LatLng = CENTRE
    half_side_m: float = HALF_SIDE_M

    def random_point(self, rng: random.Random) -> LatLng:
        dy = rng.uniform(-self.half_side_m, self.half_side_m)
        dx = rng.uniform(-self.half_side_m, self.half_side_m)
        return offset(self.centre, dy, dx)

    def pickup_point(self, rng: random.Random) -> LatLng:
        if rng.random() < HOT_SHARE:
            return self.point_near(rng, HOT_SPOT, 0, HOT_RADIUS_M)
        return self.random_point(rng)

    def point_near(self, rng: random.Random, p: LatLng, min_m: float, max_m: float) -> LatLng:
        angle, dist = rng.uniform(0, 2 * math.pi), rng.uniform(min_m, max_m)
        return offset(p, dist * math.cos(angle), dist * math.sin(angle))


def offset(p: LatLng, north_m: float, east_m: float) -> LatLng:
    lat = p.lat + north_m / M_PER_DEG_LAT
    lng = p.lng + east_m / (M_PER_DEG_LAT * math.cos(math.radians(p.lat)))
    return LatLng(lat, lng)


def step_towards(p: LatLng, target: LatLng, metres: float) -> tuple[LatLng, bool]:
    """Move up to `metres` along the straight line; True once the target is reached."""
    left = haversine_m(p, target)
    if left <= metres:
        return target, True
    f = metres / left
    return LatLng(p.lat + (target.lat - p.lat) * f, p.lng + (target.lng - p.lng) * f), False
