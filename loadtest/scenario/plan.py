"""The load plan over time, pure (no locust import: gevent patches whatever imports locust)."""

from __future__ import annotations

import math


def plan(
    t: float, users: int, total_s: float, ramp_s: float, down_s: float | None = None
) -> tuple[int, float] | None:
    """Target users and spawn rate at time t; None once the run is over. The ramp down
    lasts down_s (default: as long as the ramp up)."""
    if t >= total_s:
        return None
    down = ramp_s if down_s is None else down_s
    rate = max(users / ramp_s, 1.0)
    if t < ramp_s:
        return max(1, math.ceil(users * t / ramp_s)), rate
    if t < total_s - down or down <= 0:
        return users, rate
    left = max(0.0, (total_s - t) / down)
    return math.floor(users * left), max(users / down, 1.0)
