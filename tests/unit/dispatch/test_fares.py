"""Fare estimates: the table's price, times surge, as a range in whole cents."""

from __future__ import annotations

import math

import pytest

from dispatch.domain.fares import MAX_AMOUNT, FareTable, estimate

TABLE = FareTable(currency="EUR", base=2.0, per_km=1.0, per_min=0.5, minimum=5.0)


def test_a_trip_costs_base_distance_and_time_times_surge() -> None:
    # 2 + 10 km x 1 + 20 min x 0.5 = 22; x 1.5 = 33
    e = estimate(TABLE, 10_000, 1_200, 1.5)
    assert (e.low, e.high) == (29.7, 41.25)


def test_a_short_trip_costs_the_minimum() -> None:
    e = estimate(TABLE, 100, 30, 1.0)
    assert (e.low, e.high) == (4.5, 6.25)


def test_a_products_table_is_the_table_times_its_fare_factor_in_cents() -> None:
    xl = TABLE.for_product(1.5)
    assert (xl.base, xl.per_km, xl.per_min, xl.minimum) == (3.0, 1.5, 0.75, 7.5)
    assert xl.currency == "EUR" and TABLE.for_product(1.0) is TABLE
    odd = FareTable(base=2.5, per_km=1.2, per_min=0.3, minimum=6.0).for_product(1.3)
    assert (odd.base, odd.per_km, odd.per_min, odd.minimum) == (3.25, 1.56, 0.39, 7.8)
    assert FareTable(base=MAX_AMOUNT).for_product(10.0).base == MAX_AMOUNT  # still a table


def test_a_bad_table_is_refused() -> None:
    with pytest.raises(ValueError):
        FareTable(currency="euro")
    with pytest.raises(ValueError):
        FareTable(per_km=-1)


@pytest.mark.parametrize(
    "bad",
    [
        {"currency": "EU"},
        {"currency": "EURO"},
        {"currency": "eur"},
        {"currency": "E1R"},
        {"currency": "ÉUR"},
        {"base": -0.01},
        {"per_min": MAX_AMOUNT + 0.01},
        {"minimum": math.nan},
        {"per_km": math.inf},
    ],
)
def test_a_table_is_bounded_like_the_settings(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FareTable(**bad)  # type: ignore[arg-type]


def test_a_table_at_its_bounds_is_accepted() -> None:
    table = FareTable("JPY", 0, MAX_AMOUNT, 0, MAX_AMOUNT)
    assert estimate(table, 0, 0, 1.0).high == MAX_AMOUNT * 1.25
