"""Per-second throughput and latency of real requests (METRIC rows left out), for the report chart.

Locust's own history CSV mixes every row into "Aggregated"; this keeps a per-second histogram
of request latencies instead, merged from the workers in distributed runs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from loadtest.scenario.thresholds import METRIC


def bucket_ms(ms: float) -> int:
    """Two significant digits, like locust's own response-time histogram: small and mergeable."""
    v = int(round(ms))
    if v < 100:
        return v
    digits = len(str(v)) - 2
    return int(round(v, -digits))


class Timeline:
    def __init__(self, keep_metric: bool = False) -> None:
        # second -> [requests, failures, {latency bucket ms: count}]
        self.seconds: dict[int, list[Any]] = defaultdict(lambda: [0, 0, defaultdict(int)])
        self.keep_metric = keep_metric

    def add(self, t: float, request_type: str, response_time: float, failed: bool) -> None:
        if request_type == METRIC and not self.keep_metric:
            return
        row = self.seconds[int(t)]
        row[0] += 1
        row[1] += int(failed)
        row[2][bucket_ms(response_time)] += 1

    def drain(self) -> dict[str, Any]:
        """What a worker sends to the master: everything since the last report."""
        out = {
            str(s): [r[0], r[1], {str(k): v for k, v in r[2].items()}]
            for s, r in self.seconds.items()
        }
        self.seconds.clear()
        return out

    def merge(self, data: dict[str, Any]) -> None:
        for s, (n, f, hist) in data.items():
            row = self.seconds[int(s)]
            row[0] += n
            row[1] += f
            for k, v in hist.items():
                row[2][int(k)] += v

    def to_json(self) -> dict[str, Any]:
        return {
            str(s): [r[0], r[1], {str(k): v for k, v in sorted(r[2].items())}]
            for s, r in sorted(self.seconds.items())
        }


def percentile(hist: dict[int, int], q: float) -> float:
    total = sum(hist.values())
    if total == 0:
        return 0.0
    rank = q * total
    seen = 0
    for ms in sorted(hist):
        seen += hist[ms]
        if seen >= rank:
            return float(ms)
    return float(max(hist))


class Named:
    """One timeline per request ("WS location ack", "POST /v1/rides", "METRIC match
    latency"...), the scenario's own measurements included: a city run reads each one's
    figures over its counted window only, the ramps left out."""

    def __init__(self) -> None:
        self.by_name: dict[str, Timeline] = defaultdict(lambda: Timeline(keep_metric=True))

    def add(
        self, t: float, request_type: str, name: str, response_time: float, failed: bool
    ) -> None:
        self.by_name[f"{request_type} {name}"].add(t, request_type, response_time, failed)

    def drain(self) -> dict[str, Any]:
        return {k: tl.drain() for k, tl in self.by_name.items()}

    def merge(self, data: dict[str, Any]) -> None:
        for k, seconds in data.items():
            self.by_name[k].merge(seconds)

    def to_json(self) -> dict[str, Any]:
        return {k: tl.to_json() for k, tl in sorted(self.by_name.items())}


def window(seconds: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    """Requests, failures and percentiles of one timeline over the seconds [start, end)."""
    hist: dict[int, int] = defaultdict(int)
    n = failed = 0
    for s, (count, fails, h) in seconds.items():
        if start <= int(s) < end:
            n += count
            failed += fails
            for k, v in h.items():
                hist[int(k)] += v
    return {
        "count": n,
        "per_s": round(n / (end - start), 1) if end > start else 0.0,
        "failures": failed,
        "p50_ms": percentile(hist, 0.5),
        "p99_ms": percentile(hist, 0.99),
        "max_ms": float(max(hist)) if hist else 0.0,
    }
