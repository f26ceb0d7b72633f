"""The batched matching objective: which riders a window pairs with which drivers.

A window holds pending riders, each with candidate drivers (from the exact k-nearest
index) and a predicted pickup ETA per candidate. The solver picks at most one driver per
rider and one rider per driver, minimising

    sum over matched pairs (eta_s - credit(rider))  +  sum over unmatched riders penalty_s

where credit(rider) = min(wait_credit * waited_s, max_credit_s). Equivalently each
matched rider earns `penalty_s + credit - eta_s`, so:
- a rider is never matched to a driver whose ETA exceeds penalty_s + credit: staying
  unmatched (and trying again next window, or ending no_driver) beats a far pickup;
- among riders wanting the same driver, the one who has waited longer earns more from
  it, so an old request is not starved by a stream of new ones nearby;
- with equal waits, the total pickup time of the window is as small as it can be.
The solver itself lives in dispatch.service_layer.assignment (numpy/scipy); this module
holds what it optimises, stdlib only, so the tests can check any answer by brute force.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Edge:
    """A candidate pair: `driver` could pick `rider` up in `eta_s` seconds."""

    rider: str
    driver: str
    eta_s: float


@dataclass(frozen=True, slots=True)
class Objective:
    # 7 min: a pickup slower than this (plus the rider's credit) is worse than waiting
    # for the next window, where a nearer driver may have come free. Chosen with the
    # simulator (docs/benchmarks.md): at tight supply 420 s cut the mean pickup ETA to
    # 0.75x and its p95 to 0.61x of immediate matching at 0.995x the riders matched;
    # 300 s cut more but matched 4 % fewer, 900 s (never refuse) gained little.
    penalty_s: float = 420.0
    # Each second waited lowers the rider's costs by half a second, up to 10 min.
    wait_credit: float = 0.5
    max_credit_s: float = 600.0

    def __post_init__(self) -> None:
        if self.penalty_s <= 0 or self.wait_credit < 0 or self.max_credit_s < 0:
            raise ValueError("penalty must be positive, credits not negative")

    def credit_s(self, waited_ms: float) -> float:
        return min(self.wait_credit * max(waited_ms, 0.0) / 1000.0, self.max_credit_s)

    def cost(self, eta_s: float, waited_ms: float) -> float:
        return eta_s - self.credit_s(waited_ms)


def total_cost(
    objective: Objective,
    waited_ms: Mapping[str, float],
    edges: Iterable[Edge],
    chosen: Mapping[str, str],
) -> float:
    """The objective's value for `chosen` (rider -> driver) over the riders of
    `waited_ms`; raises ValueError if `chosen` is not a valid assignment of `edges`."""
    eta = {(e.rider, e.driver): e.eta_s for e in edges}
    if len(set(chosen.values())) != len(chosen):
        raise ValueError("a driver chosen twice")
    total = 0.0
    for rider, waited in waited_ms.items():
        driver = chosen.get(rider)
        if driver is None:
            total += objective.penalty_s
            continue
        if (rider, driver) not in eta:
            raise ValueError(f"{rider} -> {driver} is not a candidate pair")
        total += objective.cost(eta[(rider, driver)], waited)
    return total
