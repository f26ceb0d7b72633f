"""The load plan over time, pure (no locust import: gevent patches whatever imports locust)."""

from __future__ import annotations

import math


def plan(t: float, users: int, total_s: float, ramp_s: float) -> tuple[int, float] | None:
    """Target users and spawn rate at time t; None once the run is over."""
    if t >= total_s:
        return None
    rate = max(users / ramp_s, 1.0)
    if t < ramp_s:
        return max(1, math.ceil(users * t / ramp_s)), rate
    if t < total_s - ramp_s:
        return users, rate
    left = max(0.0, (total_s - t) / ramp_s)
    return math.floor(users * left), rate
