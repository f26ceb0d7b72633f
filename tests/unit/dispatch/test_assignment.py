"""The window solver finds the objective's optimum: checked against brute force."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.domain.assignment import Edge, Objective, total_cost
from dispatch.service_layer.assignment import METHODS, solve


def brute_force(objective: Objective, waited: dict[str, float], edges: list[Edge]) -> float:
    """The least total cost over every assignment (each rider: one candidate or none)."""
    options = {r: [None, *{e.driver for e in edges if e.rider == r}] for r in waited}
    best = float("inf")
    for combo in itertools.product(*options.values()):
        picked = [d for d in combo if d is not None]
        if len(picked) != len(set(picked)):
            continue
        chosen = {r: d for r, d in zip(options, combo, strict=True) if d is not None}
        best = min(best, total_cost(objective, waited, edges, chosen))
    return best


@st.composite
def instances(draw: st.DrawFn) -> tuple[Objective, dict[str, float], list[Edge]]:
    n_riders = draw(st.integers(1, 6))
    n_drivers = draw(st.integers(1, 5))
    # Whole seconds waited: credits are multiples of 0.5 s, exact for every method.
    waited = {f"r{i}": float(draw(st.integers(0, 1200)) * 1000) for i in range(n_riders)}
    edges = []
    for r in waited:
        # Some riders have no candidate; drivers are shared by many riders.
        for d in draw(st.sets(st.integers(0, n_drivers - 1), max_size=n_drivers)):
            edges.append(Edge(r, f"d{d}", float(draw(st.integers(30, 1500)))))
    penalty = float(draw(st.sampled_from([300, 600, 900])))
    return Objective(penalty_s=penalty), waited, edges


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=150, deadline=None)
@given(instance=instances())
def test_the_solver_reaches_the_brute_force_optimum(method, instance) -> None:
    if method == "flow":
        pytest.importorskip("ortools")  # optional: only the benchmark compares it
    objective, waited, edges = instance
    chosen = solve(objective, waited, edges, method)
    assert total_cost(objective, waited, edges, chosen) == pytest.approx(
        brute_force(objective, waited, edges)
    )


def test_a_far_driver_is_worse_than_staying_unmatched() -> None:
    objective = Objective(penalty_s=600)
    edges = [Edge("a", "d1", 900.0)]
    assert solve(objective, {"a": 0.0}, edges) == {}


def test_the_longer_waiting_rider_wins_a_contested_driver() -> None:
    edges = [Edge("old", "d1", 200.0), Edge("new", "d1", 150.0)]
    chosen = solve(Objective(), {"old": 120_000.0, "new": 0.0}, edges)
    assert chosen == {"old": "d1"}


def test_batching_beats_nearest_first_on_the_textbook_case() -> None:
    # Nearest-first gives a (first) d1 and leaves b with d2 far away.
    edges = [
        Edge("a", "d1", 60.0),
        Edge("a", "d2", 90.0),
        Edge("b", "d1", 70.0),
        Edge("b", "d2", 700.0),
    ]
    assert solve(Objective(), {"a": 0.0, "b": 0.0}, edges) == {"a": "d2", "b": "d1"}
