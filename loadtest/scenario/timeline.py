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
    def __init__(self) -> None:
        # second -> [requests, failures, {latency bucket ms: count}]
        self.seconds: dict[int, list[Any]] = defaultdict(lambda: [0, 0, defaultdict(int)])

    def add(self, t: float, request_type: str, response_time: float, failed: bool) -> None:
        if request_type == METRIC:
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
