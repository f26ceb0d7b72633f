"""Surge pricing per H3 cell: demand and supply smoothed over each cell's ring of
neighbours, and a multiplier that follows their ratio in steps, with hysteresis.

Pure: a cell is any hashable id, and the caller passes each cell's ring-1 neighbours in
(the service layer asks h3 for them), so nothing here knows about H3.

Smoothing. A cell's smoothed value is the weighted mean over the cell and its ring-1
neighbours (`grid_disk(k=1)`), the cell weighing 1 and each neighbour 1/2 (of 4 in all
for a hexagon, 3.5 for a pentagon's five neighbours):

    smoothed(c) = (v(c) + 0.5 * sum(v(n) for n in ring1(c))) / (1 + 0.5 * len(ring1(c)))

All six neighbours of a hexagon are equidistant, so the disk is close to a circle: a
rider standing near a cell's edge is priced much like one across it, and a spike in one
cell spreads to its ring-1 neighbours but no further.

Pressure and target. Demand is distinct riders asking per minute (quotes and requests),
supply the available, fresh drivers now, both smoothed. Pressure = demand / max(supply,
1): no driver and one rider is pressure 1, not infinity. At pressure <= 1 there is no
surge; above, the target is 1 + 0.5 x (pressure - 1), rounded down to a step of 0.1 and
clamped to [1.0, cap] (cap 3.0).

Steps and hysteresis. The stored multiplier moves toward the target only when the target
is at least `band` (0.2) away from it, or at a bound (1.0 or the cap, so it always falls
back all the way and reaches the cap), and at most `max_move` (0.5) per recompute. Noise
smaller than the band leaves it where it is: it does not flicker between two values.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

C = TypeVar("C", bound=Hashable)
# A count, or counts in a numpy array (the service's recompute converts a region's at once).
Counts = TypeVar("Counts", float, "npt.NDArray[np.float64]")

_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class SurgePolicy:
    cap: float = 3.0
    step: float = 0.1  # every multiplier is a multiple of this
    band: float = 0.2  # hysteresis: a target closer than this to the current one is ignored
    max_move: float = 0.5  # the most one recompute moves a multiplier
    centre_weight: float = 1.0
    ring_weight: float = 0.5
    sensitivity: float = 0.5  # multiplier added per unit of pressure above 1
    min_supply: float = 1.0  # supply below this counts as this

    def __post_init__(self) -> None:
        if not 1.0 <= self.cap <= 10.0:
            raise ValueError("the surge cap must be in [1, 10]")
        if not 0 < self.step <= self.band <= self.cap or self.max_move < self.step:
            raise ValueError("need 0 < step <= band <= cap and max_move >= step")
        if self.centre_weight <= 0 or self.ring_weight < 0 or self.sensitivity <= 0:
            raise ValueError("weights must be non-negative (the centre's positive)")
        if self.min_supply <= 0:
            raise ValueError("min_supply must be positive")

    def clamp(self, multiplier: float) -> float:
        return min(self.cap, max(1.0, multiplier))

    def quantize(self, multiplier: float) -> float:
        """Down to a multiple of the step (a target just over a step does not count)."""
        return round(math.floor(multiplier / self.step + _EPS) * self.step, 6)


def smoothed(values: Mapping[C, float], cell: C, ring: Sequence[C], policy: SurgePolicy) -> float:
    """The weighted mean of `values` over `cell` and its ring-1 neighbours (absent: 0)."""
    total = policy.centre_weight * values.get(cell, 0.0)
    for n in ring:
        total += policy.ring_weight * values.get(n, 0.0)
    return total / (policy.centre_weight + policy.ring_weight * len(ring))


def target(demand_per_min: float, supply: float, policy: SurgePolicy) -> float:
    return goal_for(demand_per_min / max(supply, policy.min_supply), policy)


def goal_for(pressure: float, policy: SurgePolicy) -> float:
    if pressure <= 1.0:
        return 1.0
    return policy.clamp(policy.quantize(1.0 + policy.sensitivity * (pressure - 1.0)))


def next_multiplier(current: float, goal: float, policy: SurgePolicy) -> float:
    """One recompute's move from `current` toward `goal` (see the module's docstring)."""
    gap = goal - current
    if abs(gap) < _EPS:
        return current
    at_bound = goal <= 1.0 + _EPS or goal >= policy.cap - _EPS
    if abs(gap) < policy.band - _EPS and not at_bound:
        return current
    move = max(-policy.max_move, min(policy.max_move, gap))
    return policy.clamp(round(current + move, 6))


def recompute(
    demand_per_min: Mapping[C, float],
    supply: Mapping[C, float],
    current: Mapping[C, float],
    ring: Callable[[C], Sequence[C]],
    policy: SurgePolicy,
) -> dict[C, float]:
    """The next multiplier of every cell that may surge: cells with demand, their
    neighbours, and cells surging now (so they can fall back). Cells at 1.0 are left out."""
    # The reference the service's vectorised recompute is held equal to
    # (dispatch/service_layer/surge_fast.py, by a property test): plain enough to read,
    # and fast enough for small regions. Each value is spread to its cell and ring
    # (scatter) rather than each cell gathering its seven.
    cw, rw = policy.centre_weight, policy.ring_weight
    rings: dict[C, Sequence[C]] = {}
    d_sum: defaultdict[C, float] = defaultdict(float, dict.fromkeys(current, 0.0))
    for c, v in demand_per_min.items():
        if v > 0:
            around = rings[c] = ring(c)
            d_sum[c] += cw * v
            share = rw * v
            for n in around:
                d_sum[n] += share
    s_sum: defaultdict[C, float] = defaultdict(float)
    for c, v in supply.items():
        if v > 0:
            around = rings.get(c) or ring(c)
            s_sum[c] += cw * v
            share = rw * v
            for n in around:
                s_sum[n] += share
    hexagon = cw + 6 * rw
    floor = policy.min_supply
    now_of, ring_of = current.get, rings.get
    drivers_of = s_sum.get  # .get: a missing cell must not be added while iterating
    out: dict[C, float] = {}
    for c, d in d_sum.items():
        now = now_of(c, 1.0)
        goal = 1.0
        if d > 0:
            around = ring_of(c) or ring(c)
            weight = hexagon if len(around) == 6 else cw + rw * len(around)
            # target(d / weight, supply / weight), without a call for each cell
            pressure = d / max(drivers_of(c, 0.0), floor * weight)
            if pressure > 1.0:
                goal = goal_for(pressure, policy)
        if goal == now:
            if now > 1.0:
                out[c] = now
            continue
        m = next_multiplier(now, goal, policy)
        if m > 1.0:
            out[c] = m
    return out


@dataclass(frozen=True, slots=True)
class Pin:
    """An operator's fixed multiplier for a cell, until a time (ms)."""

    multiplier: float
    until_ms: int


def pins_of(pins: Mapping[tuple[C, str | None], Pin], product: str, now_ms: int) -> dict[C, Pin]:
    """The pins that price `product` in each cell: the product's own while it lives,
    else the cell's pin for every product (`None` for the product)."""
    out: dict[C, Pin] = {}
    for (cell, named), pin in pins.items():
        if named is None:
            out.setdefault(cell, pin)
    for (cell, named), pin in pins.items():
        if named == product and pin.until_ms > now_ms:
            out[cell] = pin
    return out


def effective(computed: float, pin: Pin | None, enabled: bool, now_ms: int) -> float:
    """What riders are quoted: a live pin wins; with surge turned off, 1.0; else the
    computed multiplier."""
    if pin is not None and pin.until_ms > now_ms:
        return pin.multiplier
    return computed if enabled else 1.0


def per_minute(count: Counts, window_ms: int) -> Counts:
    return count * 60_000 / window_ms


def distinct(pairs: Iterable[tuple[C, str]]) -> dict[C, int]:
    """Distinct riders per cell from (cell, rider) pairs: one rider's flood counts once."""
    seen: set[tuple[C, str]] = set()
    out: dict[C, int] = {}
    for pair in pairs:
        if pair not in seen:
            seen.add(pair)
            out[pair[0]] = out.get(pair[0], 0) + 1
    return out


@dataclass(frozen=True, slots=True)
class CountWindow:
    """Demand is counted in buckets of `bucket_ms` and read over the last `window_ms`
    (5 s over 60 s by default): the window slides a bucket at a time, and a bucket older
    than the window is never read again (stores let it expire)."""

    bucket_ms: int = 5_000
    window_ms: int = 60_000

    def __post_init__(self) -> None:
        if self.bucket_ms <= 0 or self.window_ms < self.bucket_ms:
            raise ValueError("need 0 < bucket_ms <= window_ms")
        if self.window_ms % self.bucket_ms:
            raise ValueError("window_ms must be a whole number of buckets")

    def bucket(self, now_ms: int) -> int:
        return now_ms // self.bucket_ms

    def buckets(self, now_ms: int) -> range:
        """The buckets the window at `now_ms` reads, the current one included."""
        last = self.bucket(now_ms)
        return range(last - self.window_ms // self.bucket_ms + 1, last + 1)

    @property
    def keep_ms(self) -> int:
        """How long a bucket must live: the window, plus the bucket itself."""
        return self.window_ms + self.bucket_ms
