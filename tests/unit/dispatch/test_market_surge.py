"""Surge per cell: smoothing over ring 1, the multiplier's steps, hysteresis and cap."""

from __future__ import annotations

import random

import pytest
from h3.api import basic_str as h3

from dispatch.domain.market import (
    CountWindow,
    Pin,
    SurgePolicy,
    distinct,
    effective,
    next_multiplier,
    pins_of,
    recompute,
    smoothed,
    target,
)

POLICY = SurgePolicy()
CENTRE = h3.latlng_to_cell(52.52, 13.405, 8)
RING1 = [c for c in h3.grid_ring(CENTRE, 1)]
RING2 = [c for c in h3.grid_ring(CENTRE, 2)]


def ring(cell: str) -> list[str]:
    return [c for c in h3.grid_disk(cell, 1) if c != cell]


def settle(
    demand: dict[str, float], supply: dict[str, float], current: dict[str, float], rounds: int
) -> dict[str, float]:
    for _ in range(rounds):
        current = recompute(demand, supply, current, ring, POLICY)
    return current


def test_a_spike_in_one_cell_raises_it_and_its_ring_but_not_two_rings_away() -> None:
    surge = settle({CENTRE: 20.0}, {}, {}, rounds=10)
    assert surge[CENTRE] == POLICY.cap
    for c in RING1:
        assert 1.0 < surge[c] < surge[CENTRE]
    for c in RING2:
        assert c not in surge  # 1.0: left out of the sparse answer


def test_supply_nearby_damps_the_surge() -> None:
    alone = settle({CENTRE: 24.0}, {}, {}, rounds=10)
    helped = settle({CENTRE: 24.0}, {CENTRE: 8.0, RING1[0]: 4.0}, {}, rounds=10)
    assert alone[CENTRE] == 3.0
    assert helped[CENTRE] == 1.7  # smoothed 6 riders/min over 2.5 drivers


def test_the_multiplier_falls_back_to_one_when_demand_goes() -> None:
    surge = settle({CENTRE: 20.0}, {}, {}, rounds=10)
    calm = settle({}, {}, surge, rounds=10)
    assert calm == {}


def test_moves_at_most_max_move_per_recompute() -> None:
    first = recompute({CENTRE: 20.0}, {}, {}, ring, POLICY)
    assert first[CENTRE] == 1.0 + POLICY.max_move
    back = recompute({}, {}, {CENTRE: 3.0}, ring, POLICY)
    assert back[CENTRE] == 3.0 - POLICY.max_move


def test_hysteresis_holds_the_multiplier_under_noise() -> None:
    rng = random.Random(7)
    base = 8.0  # smoothed 2.0 per minute against one driver: pressure 2, target 1.5
    surge = settle({CENTRE: base}, {}, {}, rounds=5)
    held = surge[CENTRE]
    seen = set()
    for _ in range(200):
        noisy = {CENTRE: base * rng.uniform(0.93, 1.07)}  # target wanders within 1.4..1.6
        surge = recompute(noisy, {}, surge, ring, POLICY)
        seen.add(surge[CENTRE])
    assert seen == {held}


def test_a_real_change_beyond_the_band_moves_it() -> None:
    assert next_multiplier(1.5, 1.6, POLICY) == 1.5
    assert next_multiplier(1.5, 1.7, POLICY) == 1.7
    assert next_multiplier(1.5, 1.3, POLICY) == 1.3
    assert next_multiplier(1.1, 1.0, POLICY) == 1.0  # the floor is always reached
    assert next_multiplier(2.9, 3.0, POLICY) == 3.0  # and the cap


@pytest.mark.parametrize("demand", [40.0, 1e3, 1e9])
def test_the_cap_holds(demand: float) -> None:
    surge = settle({CENTRE: demand}, {}, {}, rounds=20)
    assert max(surge.values()) == POLICY.cap
    assert target(demand, 0.0, POLICY) <= POLICY.cap


def test_a_lower_cap_is_respected() -> None:
    policy = SurgePolicy(cap=1.5)
    current: dict[str, float] = {}
    for _ in range(10):
        current = recompute({CENTRE: 100.0}, {}, current, ring, policy)
    assert max(current.values()) == 1.5


def test_no_pressure_no_surge() -> None:
    assert target(1.0, 1.0, POLICY) == 1.0
    assert target(3.0, 5.0, POLICY) == 1.0
    assert target(0.9, 0.0, POLICY) == 1.0  # one rider, no driver: pressure below 1


def test_targets_are_whole_steps() -> None:
    assert target(2.39, 1.0, POLICY) == 1.6  # 1.695 rounds down
    assert target(3.0, 1.0, POLICY) == 2.0


def test_smoothing_weights_the_centre_and_each_neighbour() -> None:
    values = {CENTRE: 4.0, RING1[0]: 2.0}
    assert smoothed(values, CENTRE, RING1, POLICY) == pytest.approx((4.0 + 0.5 * 2.0) / 4.0)
    assert smoothed(values, RING2[0], ring(RING2[0]), POLICY) >= 0.0


def test_a_pentagon_has_five_neighbours_and_normalises_by_them() -> None:
    pentagon = next(iter(h3.get_pentagons(8)))
    neighbours = ring(pentagon)
    assert len(neighbours) == 5
    values = {c: 2.0 for c in [pentagon, *neighbours]}
    assert smoothed(values, pentagon, neighbours, POLICY) == pytest.approx(2.0)


def test_a_live_pin_wins_and_surge_off_means_one() -> None:
    assert effective(2.0, None, True, 0) == 2.0
    assert effective(2.0, None, False, 0) == 1.0
    assert effective(2.0, Pin(1.2, 10), True, 5) == 1.2
    assert effective(2.0, Pin(1.2, 10), False, 5) == 1.2
    assert effective(2.0, Pin(1.2, 10), True, 10) == 2.0  # expired


def test_a_products_own_live_pin_wins_over_the_pin_for_every_product() -> None:
    everyone, xl, old = Pin(1.5, 100), Pin(2.0, 100), Pin(2.5, 10)
    pins = {("a", None): everyone, ("a", "xl"): xl, ("b", "xl"): old, ("b", None): everyone}
    assert pins_of(pins, "xl", 5) == {"a": xl, "b": old}
    assert pins_of(pins, "xl", 50) == {"a": xl, "b": everyone}  # b's own pin ran out
    assert pins_of(pins, "economy", 5) == {"a": everyone, "b": everyone}
    assert pins_of({("c", "xl"): xl}, "economy", 5) == {}


def test_distinct_counts_one_rider_once_per_cell() -> None:
    pairs = [("a", "r1")] * 500 + [("a", "r2"), ("b", "r1")]
    assert distinct(pairs) == {"a": 2, "b": 1}


def test_the_window_reads_its_buckets() -> None:
    w = CountWindow(5_000, 60_000)
    assert len(w.buckets(1_000_000)) == 12
    assert w.buckets(1_000_000)[-1] == w.bucket(1_000_000) == 200
    with pytest.raises(ValueError):
        CountWindow(5_000, 7_000)


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        SurgePolicy(cap=0.5)
    with pytest.raises(ValueError):
        SurgePolicy(step=0.3, band=0.2)
