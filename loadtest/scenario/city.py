"""A synthetic city: drivers drive plausible paths inside it, riders ask for rides at hot spots."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

EARTH_M = 6_371_000.0


@dataclass(frozen=True)
class City:
    lat: float = 52.52  # Berlin-sized: a 9 km radius holds most trips
    lng: float = 13.405
    radius_m: float = 9_000.0
    # (north offset m, east offset m, spread m, weight): stations, centre, airport.
    hotspots: tuple[tuple[float, float, float, float], ...] = (
        (0.0, 0.0, 1_200.0, 0.35),
        (-1_800.0, -2_500.0, 600.0, 0.2),
        (2_500.0, 3_000.0, 900.0, 0.15),
        (-6_000.0, 5_500.0, 400.0, 0.1),
    )

    def offset(self, north_m: float, east_m: float) -> tuple[float, float]:
        lat = self.lat + math.degrees(north_m / EARTH_M)
        lng = self.lng + math.degrees(east_m / (EARTH_M * math.cos(math.radians(self.lat))))
        return lat, lng

    def uniform_point(self, rng: random.Random) -> tuple[float, float]:
        r = self.radius_m * math.sqrt(rng.random())
        a = rng.uniform(0, 2 * math.pi)
        return self.offset(r * math.cos(a), r * math.sin(a))

    def demand_point(self, rng: random.Random) -> tuple[float, float]:
        """A pickup: mostly near a hot spot, the rest anywhere in town."""
        pick = rng.random()
        for north, east, spread, weight in self.hotspots:
            if pick < weight:
                return self.offset(rng.gauss(north, spread), rng.gauss(east, spread))
            pick -= weight
        return self.uniform_point(rng)


class DriverPath:
    """A car moving at city speed that turns now and then and stays inside the city."""

    def __init__(self, city: City, rng: random.Random) -> None:
        self.city = city
        self.rng = rng
        r = city.radius_m * math.sqrt(rng.random())
        a = rng.uniform(0, 2 * math.pi)
        self.north, self.east = r * math.cos(a), r * math.sin(a)
        self.heading = rng.uniform(0, 360)
        self.speed = rng.uniform(5.0, 14.0)  # m/s

    def step(self, dt_s: float) -> tuple[float, float]:
        if self.rng.random() < 0.2:
            self.heading = (self.heading + self.rng.choice((-90, 90, 180, 30, -30))) % 360
        h = math.radians(self.heading)
        north = self.north + self.speed * dt_s * math.cos(h)
        east = self.east + self.speed * dt_s * math.sin(h)
        if math.hypot(north, east) > self.city.radius_m:
            self.heading = (self.heading + 180) % 360  # bounce back towards the centre
        else:
            self.north, self.east = north, east
        return self.position

    @property
    def position(self) -> tuple[float, float]:
        return self.city.offset(self.north, self.east)
