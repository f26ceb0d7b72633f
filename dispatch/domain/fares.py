"""Fare estimates: a fare table's price for a trip of some length and time, times the
surge multiplier, as a range (the route is not known yet, only the straight line).

Distance and duration come from the same rough model as the pickup ETA (straight line x
detour at an average city speed); the range is -10 % / +25 % around the point estimate
so the upper end survives traffic. No money is charged here."""

from __future__ import annotations

import math
from dataclasses import dataclass

LOW, HIGH = 0.9, 1.25


@dataclass(frozen=True, slots=True)
class FareTable:
    currency: str = "EUR"
    base: float = 2.50
    per_km: float = 1.20
    per_min: float = 0.30
    minimum: float = 6.00

    def __post_init__(self) -> None:
        if len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.isupper():
            raise ValueError("currency must be an ISO 4217 code such as EUR")
        if min(self.base, self.per_km, self.per_min, self.minimum) < 0:
            raise ValueError("fare amounts must not be negative")


@dataclass(frozen=True, slots=True)
class Estimate:
    low: float
    high: float


def estimate(table: FareTable, distance_m: float, duration_s: float, surge: float) -> Estimate:
    point = table.base + table.per_km * distance_m / 1000 + table.per_min * duration_s / 60
    point = max(table.minimum, point) * surge
    return Estimate(_cents_down(point * LOW), _cents_up(point * HIGH))


def _cents_down(amount: float) -> float:
    return math.floor(amount * 100 + 1e-6) / 100


def _cents_up(amount: float) -> float:
    return math.ceil(amount * 100 - 1e-6) / 100
