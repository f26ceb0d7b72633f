"""Fare estimates: a fare table's price (times the product's fare factor) for a trip of
some length and time, times the surge multiplier, as a range (the route is not known yet,
only the straight line).

Distance and duration come from the same rough model as the pickup ETA (straight line x
detour at an average city speed); the range is -10 % / +25 % around the point estimate
so the upper end survives traffic. No money is charged here."""

from __future__ import annotations

import math
from dataclasses import dataclass

LOW, HIGH = 0.9, 1.25
MAX_AMOUNT = 10_000.0  # per fare item: the settings' bound, and a service area's


@dataclass(frozen=True, slots=True)
class FareTable:
    """The default from the settings, or a service area's own (its `fare` property)."""

    currency: str = "EUR"
    base: float = 2.50
    per_km: float = 1.20
    per_min: float = 0.30
    minimum: float = 6.00

    def for_product(self, factor: float) -> FareTable:
        """The table a product pays: every amount times its fare factor, in cents."""
        if factor == 1.0:
            return self
        return FareTable(
            self.currency,
            *(min(MAX_AMOUNT, round(a * factor, 2)) for a in self._amounts()),
        )

    def _amounts(self) -> tuple[float, float, float, float]:
        return (self.base, self.per_km, self.per_min, self.minimum)

    def __post_init__(self) -> None:
        if not (len(self.currency) == 3 and self.currency.isascii()):
            raise ValueError("currency must be an ISO 4217 code such as EUR")
        if not (self.currency.isalpha() and self.currency.isupper()):
            raise ValueError("currency must be an ISO 4217 code such as EUR")
        for amount in self._amounts():
            if not 0 <= amount <= MAX_AMOUNT:  # NaN fails too
                raise ValueError(f"fare amounts must be from 0 to {MAX_AMOUNT:g}")


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
