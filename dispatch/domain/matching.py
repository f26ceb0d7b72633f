"""The matching policy: where to look for drivers and whom to offer first.

The search widens in steps (1 km, 2.5 km, 5 km by default) so a rider in a busy area is
matched with someone close before we look further; candidates are tried nearest first
(ties by driver id, as the index orders them). The ETA quoted is the ETA model's
(dispatch.domain.eta), learned per area from observed pickups.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candidate:
    driver_id: str
    distance_m: float


@dataclass(frozen=True, slots=True)
class MatchingPolicy:
    radius_steps_m: tuple[float, ...] = (1_000.0, 2_500.0, 5_000.0)
    candidates_per_step: int = 10
    max_reservation_tries: int = 20  # reservations refused (raced) per search, at most
    max_attempts: int = 3  # offers per ride before no_driver
    offer_timeout_ms: int = 15_000
    # Active rides one rider may have at once: each holds a driver, so without a cap one
    # rider requesting back to back could take every driver in an area off the market.
    max_active_rides: int = 2

    def __post_init__(self) -> None:
        steps = self.radius_steps_m
        if not steps or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise ValueError("radius steps must be a non-empty increasing sequence")
        if steps[0] <= 0 or self.candidates_per_step < 1 or self.max_attempts < 1:
            raise ValueError("radius, candidates per step and attempts must be positive")
        if self.max_active_rides < 1:
            raise ValueError("a rider must be allowed at least one active ride")
        if self.offer_timeout_ms <= 0:
            raise ValueError("the offer timeout must be positive")


def next_candidates(
    found: Sequence[Candidate], excluded: Iterable[str], tried: set[str]
) -> list[Candidate]:
    """Candidates of one search step, nearest first, minus those who passed on this ride
    and those already tried in this search; marks the returned ones as tried."""
    skip = set(excluded) | tried
    out = sorted(
        (c for c in found if c.driver_id not in skip), key=lambda c: (c.distance_m, c.driver_id)
    )
    tried.update(c.driver_id for c in out)
    return out
