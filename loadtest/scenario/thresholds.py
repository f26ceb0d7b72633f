"""Thresholds that set a headless run's exit code: fail ratio and latency percentiles.

Only real requests count: the scenario's own measurements are reported as request type
METRIC (so that locust aggregates them across workers) and are left out here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.stats import StatsEntry

METRIC = "METRIC"  # the request type of the scenario's own measurements (metrics.py)


class Totals(Protocol):
    num_requests: int

    @property
    def fail_ratio(self) -> float: ...

    def get_response_time_percentile(self, percent: float) -> float: ...


@dataclass(frozen=True)
class Limits:
    max_fail_ratio: float
    max_p95_ms: float
    max_p99_ms: float


def request_totals(environment: Environment) -> StatsEntry:
    from locust.stats import StatsEntry  # here: importing locust patches the process with gevent

    total = StatsEntry(environment.stats, "Requests", "", use_response_times_cache=False)
    for (_name, method), entry in environment.stats.entries.items():
        if method != METRIC:
            total.extend(entry)
    return total


def violations(total: Totals, limits: Limits) -> list[str]:
    out = []
    if total.num_requests == 0:
        return ["no request was made"]
    if total.fail_ratio > limits.max_fail_ratio:
        out.append(f"fail ratio {total.fail_ratio:.4f} > {limits.max_fail_ratio}")
    p95 = total.get_response_time_percentile(0.95)
    p99 = total.get_response_time_percentile(0.99)
    if p95 > limits.max_p95_ms:
        out.append(f"p95 {p95:.0f} ms > {limits.max_p95_ms:.0f} ms")
    if p99 > limits.max_p99_ms:
        out.append(f"p99 {p99:.0f} ms > {limits.max_p99_ms:.0f} ms")
    return out
