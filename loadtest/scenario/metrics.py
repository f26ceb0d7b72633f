"""Our own measurements, fired as locust requests of type METRIC.

Locust then aggregates them across workers and writes their percentiles into its CSV and
HTML like any request; thresholds and summaries leave the METRIC rows out.
"""

from __future__ import annotations

from locust.env import Environment

from loadtest.scenario.thresholds import METRIC

__all__ = ["METRIC", "record"]


def record(env: Environment, name: str, value_ms: float, failure: str | None = None) -> None:
    env.events.request.fire(  # type: ignore[no-untyped-call]
        request_type=METRIC,
        name=name,
        response_time=value_ms,
        response_length=0,
        exception=RuntimeError(failure) if failure else None,
        context={},
    )
