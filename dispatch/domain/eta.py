"""Pickup ETA: straight-line distance x circuity / speed, per area and hour of the week,
learned from the pickups drivers actually make.

Circuity (road distance over straight-line distance) is about 1.3 in city road networks
(Ballou et al. 2002; Giacomin & Levinson 2015 measure 1.2-1.4 across US cities), and a
city driver averages about 30 km/h door to door; these are the defaults until a cell and
hour has observations. Each observed pickup (accept -> arrived, over the straight-line
distance, and the path the driver drove when known) moves that cell's and hour's
parameters by exponential smoothing, one observation weighing `alpha`. Observations
outside plausible bounds are clamped, so one GPS glitch cannot wreck an area's model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WEEK_MS = 7 * 24 * 3_600_000
HOUR_MS = 3_600_000
# 1970-01-01 was a Thursday: shift so hour 0 of the week is Monday 00:00 UTC.
_MONDAY_SHIFT_MS = 3 * 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class EtaParams:
    circuity: float = 1.3
    speed_mps: float = 30_000 / 3600
    observations: int = 0

    def eta_s(self, distance_m: float) -> int:
        return math.ceil(distance_m * self.circuity / self.speed_mps)


@dataclass(frozen=True, slots=True)
class Learning:
    alpha: float = 0.1  # weight of one observation (about the last 10 to 20 count)
    min_circuity: float = 1.0
    max_circuity: float = 3.0
    min_speed_mps: float = 1.0
    max_speed_mps: float = 40.0
    min_distance_m: float = 100.0  # shorter pickups say more about GPS than roads

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")


def hour_of_week(now_ms: int) -> int:
    """0 = Monday 00:00-01:00 UTC ... 167 = Sunday 23:00 UTC. (UTC: a city's local rush
    hour is still one fixed hour of the week, so nothing is lost by not converting.)"""
    return ((now_ms + _MONDAY_SHIFT_MS) % WEEK_MS) // HOUR_MS


def observe(
    params: EtaParams,
    learning: Learning,
    distance_m: float,
    duration_s: float,
    path_m: float | None = None,
) -> EtaParams | None:
    """`params` moved toward one observed pickup, or None if it teaches nothing.

    With the driven path, circuity (path / straight line) and speed (path / time) are
    both observed. Without it, time over distance only gives their ratio: the speed is
    held and the circuity takes the difference (a slow hour then reads as a winding
    area, until paths are reported; the ETA is right either way)."""
    if distance_m < learning.min_distance_m or duration_s <= 0:
        return None
    if path_m is not None and path_m > 0:
        circuity = path_m / distance_m
        speed = path_m / duration_s
    else:
        circuity = duration_s * params.speed_mps / distance_m
        speed = params.speed_mps
    circuity = min(max(circuity, learning.min_circuity), learning.max_circuity)
    speed = min(max(speed, learning.min_speed_mps), learning.max_speed_mps)
    a = learning.alpha
    return EtaParams(
        (1 - a) * params.circuity + a * circuity,
        (1 - a) * params.speed_mps + a * speed,
        params.observations + 1,
    )
