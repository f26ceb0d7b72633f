"""The load scenario's pure parts: the ramp-hold-ramp plan, thresholds, the synthetic city."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from loadtest.scenario.city import City, DriverPath
from loadtest.scenario.plan import plan
from loadtest.scenario.thresholds import Limits, violations


def test_plan_ramps_up_holds_and_ramps_down_to_the_end() -> None:
    users, total, ramp = 100, 60.0, 10.0
    assert plan(0.0, users, total, ramp) == (1, 10.0)
    assert plan(5.0, users, total, ramp) == (50, 10.0)
    assert plan(30.0, users, total, ramp) == (100, 10.0)
    assert plan(55.0, users, total, ramp) == (50, 10.0)
    assert plan(60.0, users, total, ramp) is None


@dataclass
class _Totals:
    num_requests: int
    fail_ratio: float
    p95: float
    p99: float

    def get_response_time_percentile(self, percent: float) -> float:
        return self.p95 if percent == 0.95 else self.p99


LIMITS = Limits(max_fail_ratio=0.01, max_p95_ms=100, max_p99_ms=200)


def test_thresholds_pass_within_limits() -> None:
    assert violations(_Totals(1000, 0.005, 90, 190), LIMITS) == []


def test_each_threshold_is_reported() -> None:
    problems = violations(_Totals(1000, 0.02, 101, 201), LIMITS)
    assert [p.split()[0] for p in problems] == ["fail", "p95", "p99"]


def test_a_run_without_requests_fails() -> None:
    assert violations(_Totals(0, 0.0, 0, 0), LIMITS) == ["no request was made"]


def _distance_m(city: City, lat: float, lng: float) -> float:
    north = math.radians(lat - city.lat) * 6_371_000
    east = math.radians(lng - city.lng) * 6_371_000 * math.cos(math.radians(city.lat))
    return math.hypot(north, east)


def test_drivers_stay_in_town_and_move_at_city_speed() -> None:
    city, rng = City(), random.Random(7)
    path = DriverPath(city, rng)
    prev = path.position
    for _ in range(2_000):
        lat, lng = path.step(4.0)
        assert _distance_m(city, lat, lng) <= city.radius_m + 1
        moved = _distance_m(City(lat=prev[0], lng=prev[1]), lat, lng)
        assert moved <= 14.0 * 4.0 + 1
        prev = (lat, lng)


def test_demand_concentrates_at_the_hot_spots() -> None:
    city, rng = City(), random.Random(3)
    points = [city.demand_point(rng) for _ in range(5_000)]
    near_centre = sum(_distance_m(city, lat, lng) < 2_500 for lat, lng in points)
    # Uniform demand would put (2.5 / 9)^2, about 8 %, within 2.5 km of the centre.
    assert near_centre / len(points) > 0.3
