"""The service's Prometheus metrics, through prometheus_client, in a registry of their
own per app: tests run many apps in one process, and each instance reports only itself
(counters are per instance; sum them across instances)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from dispatch.domain.rides import TERMINAL, Ride
from dispatch.service_layer.match_window import WindowStats

# The text format every Prometheus reads (0.0.4), whatever this library's newest is.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# No `<name>_created` series beside every counter: nothing here reads them. (A process-wide
# switch of the library; this service is its only user in the process.)
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


class _Served:
    """One (method, route, status)'s requests: how many, their seconds, and how many
    fell in each latency bucket (+Inf last)."""

    __slots__ = ("count", "seconds", "buckets")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)


class Tallies:
    """The series counted on every request and every fix: HTTP requests (a counter and
    a latency histogram by route) and position fixes by result. Plain numbers here,
    made into Prometheus families when scraped: prometheus_client's counter and
    histogram take a lock and walk the buckets on every update (some 5 us a request,
    this under 1). The same series and the same text (a test renders both)."""

    def __init__(self) -> None:
        self.served: dict[tuple[str, str, int], _Served] = {}
        self.fixes = {"accepted": 0, "stale": 0}

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        served = self.served.get((method, route, status))
        if served is None:
            served = self.served[method, route, status] = _Served()
        served.count += 1
        served.seconds += seconds
        served.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # le: value <= bound

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "dispatch_http_requests",
            "HTTP requests by route and status",
            labels=["method", "route", "status"],
        )
        by_route: dict[tuple[str, str], _Served] = {}  # the histogram: statuses summed
        for (method, route, status), served in self.served.items():
            requests.add_metric([method, route, str(status)], float(served.count))
            summed = by_route.setdefault((method, route), _Served())
            summed.seconds += served.seconds
            summed.buckets = [a + b for a, b in zip(summed.buckets, served.buckets, strict=True)]
        latency = HistogramMetricFamily(
            "dispatch_http_request_duration_seconds",
            "HTTP request latency by route",
            labels=["method", "route"],
        )
        bounds = [floatToGoString(b) for b in (*LATENCY_BUCKETS, float("inf"))]  # type: ignore[no-untyped-call]
        for (method, route), summed in by_route.items():
            cumulative = [float(n) for n in accumulate(summed.buckets)]
            latency.add_metric(
                [method, route], list(zip(bounds, cumulative, strict=True)), summed.seconds
            )
        fixes = CounterMetricFamily(
            "dispatch_location_updates",
            "Position fixes by result (accepted, stale)",
            labels=["result"],
        )
        for result, n in self.fixes.items():
            fixes.add_metric([result], float(n))
        return iter((requests, latency, fixes))


class Metrics:
    """The service's metrics; also the use cases' Observer (rides, location updates)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.tallies = Tallies()  # first: the series it makes render first, as they did
        r.register(self.tallies)
        # One HTTP request served (method, route, status, seconds): on every request.
        self.request = self.tallies.request
        self.ride_changes = Counter(
            "dispatch_ride_changes_total",
            "Ride state changes made here, by new status",
            ["status"],
            registry=r,
        )
        self.rides_finished = Counter(
            "dispatch_rides_finished_total", "Rides that ended, by outcome", ["outcome"], registry=r
        )
        self.websockets = Gauge("dispatch_websockets_open", "Open driver WebSockets", registry=r)
        self.event_streams = Gauge(
            "dispatch_event_streams_open", "Open rider event streams", registry=r
        )
        self.backend_errors = Counter(
            "dispatch_backend_errors_total",
            "Requests failed because the backend was unavailable",
            registry=r,
        )
        self.rate_limited = Counter(
            "dispatch_rate_limited_total",
            "Requests refused by a rate limit, by limit",
            ["limit"],
            registry=r,
        )
        # Batched matching: one observation per solved window of a region.
        self.window_solve = Histogram(
            "dispatch_match_window_solve_seconds",
            "CPU time of one window's assignment",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.window_took = Histogram(
            "dispatch_match_window_seconds",
            "Wall time of one window, from reading its queue to its last offer out",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.window_riders = Counter(
            "dispatch_match_window_riders_total",
            "Searching riders in solved windows, by outcome (matched, carried over, gave up)",
            ["outcome"],
            registry=r,
        )
        self.window_candidates = Counter(
            "dispatch_match_window_candidates_total",
            "Candidate (rider, driver) pairs given to the solver",
            registry=r,
        )
        self.window_refused = Counter(
            "dispatch_match_window_refused_total",
            "Chosen pairs whose reservation the driver's record refused",
            registry=r,
        )
        self.window_freed = Counter(
            "dispatch_match_window_freed_total",
            "Drivers a window reserved and never offered (it died or lost its lease), freed",
            registry=r,
        )

    def backend_error(self) -> None:
        self.backend_errors.inc()

    def refused(self, limit: str) -> None:
        self.rate_limited.labels(limit).inc()

    # -- Observer ----------------------------------------------------------------------
    def ride_changed(self, ride: Ride) -> None:
        self.ride_changes.labels(ride.status.value).inc()
        if ride.status in TERMINAL:
            self.rides_finished.labels(ride.status.value).inc()

    def locations(self, accepted: int, stale: int) -> None:
        fixes = self.tallies.fixes
        fixes["accepted"] += accepted
        fixes["stale"] += stale

    def window_solved(self, stats: WindowStats) -> None:
        self.window_solve.observe(stats.solve_s)
        if stats.matched:  # the windows that kept riders waiting for an offer
            self.window_took.observe(stats.took_s)
        self.window_candidates.inc(stats.candidates)
        self.window_refused.inc(stats.refused)
        self.window_freed.inc(stats.freed)
        for outcome, n in (
            ("matched", stats.matched),
            ("carried", stats.carried),
            ("gave_up", stats.gave_up),
        ):
            if n:
                self.window_riders.labels(outcome).inc(n)

    def render(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)
