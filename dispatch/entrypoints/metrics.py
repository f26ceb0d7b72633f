"""Prometheus metrics in the text exposition format (0.0.4), written by hand: counters,
gauges and histograms with labels, and nothing else."""

from __future__ import annotations

import bisect
from collections import defaultdict

from dispatch.domain.rides import TERMINAL, Ride

Labels = tuple[tuple[str, str], ...]
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    pairs = labels + extra
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


class Counter:
    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self.values: dict[Labels, float] = defaultdict(float)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] += amount

    def lines(self) -> list[str]:
        return [f"{self.name}{_fmt(k)} {_num(v)}" for k, v in sorted(self.values.items())]


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] = value


class Histogram:
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.buckets = name, help_text, buckets
        self.counts: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = defaultdict(float)

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        counts = self.counts.setdefault(key, [0] * (len(self.buckets) + 1))
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sums[key] += value

    def lines(self) -> list[str]:
        out: list[str] = []
        for key, counts in sorted(self.counts.items()):
            running = 0
            for bound, n in zip((*self.buckets, float("inf")), counts, strict=True):
                running += n
                le = "+Inf" if bound == float("inf") else _num(bound)
                out.append(f"{self.name}_bucket{_fmt(key, (('le', le),))} {running}")
            out.append(f"{self.name}_sum{_fmt(key)} {_num(self.sums[key])}")
            out.append(f"{self.name}_count{_fmt(key)} {running}")
        return out


class Metrics:
    """The service's metrics; also the use cases' Observer (rides, location updates)."""

    def __init__(self) -> None:
        self.requests = Counter("dispatch_http_requests_total", "HTTP requests by route and status")
        self.latency = Histogram(
            "dispatch_http_request_duration_seconds",
            "HTTP request latency by route",
            LATENCY_BUCKETS,
        )
        self.location_updates = Counter(
            "dispatch_location_updates_total", "Position fixes by result (accepted, stale)"
        )
        self.ride_changes = Counter(
            "dispatch_ride_changes_total", "Ride state changes made here, by new status"
        )
        self.rides_finished = Counter(
            "dispatch_rides_finished_total", "Rides that ended, by outcome"
        )
        self.websockets = Gauge("dispatch_websockets_open", "Open driver WebSockets")
        self.event_streams = Gauge("dispatch_event_streams_open", "Open rider event streams")
        self.backend_errors = Counter(
            "dispatch_backend_errors_total", "Requests failed because the backend was unavailable"
        )
        self.rate_limited = Counter(
            "dispatch_rate_limited_total", "Requests refused by a rate limit, by limit"
        )
        self.websockets.set(0)
        self.event_streams.set(0)

    def ride_changed(self, ride: Ride) -> None:
        self.ride_changes.inc(status=ride.status.value)
        if ride.status in TERMINAL:
            self.rides_finished.inc(outcome=ride.status.value)

    def locations(self, accepted: int, stale: int) -> None:
        if accepted:
            self.location_updates.inc(accepted, result="accepted")
        if stale:
            self.location_updates.inc(stale, result="stale")

    def render(self) -> str:
        out: list[str] = []
        for m in (
            self.requests, self.latency, self.location_updates, self.ride_changes,
            self.rides_finished, self.websockets, self.event_streams, self.backend_errors,
            self.rate_limited,
        ):  # fmt: skip
            out.append(f"# HELP {m.name} {m.help}")
            out.append(f"# TYPE {m.name} {m.kind}")
            out.extend(m.lines())
        return "\n".join(out) + "\n"
