"""`python -m loadtest.run --fleets 300`, short: a city of driver sockets at one fix every
4 s and riders at a steady rate through nginx and 3 instances, with locust in two
processes; the report gives the fixes' and rides' figures over the counted window, the
per-core costs and no failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.nginx_proc import nginx_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.nginx,
    pytest.mark.redis,
    pytest.mark.skipif(
        not nginx_available(), reason="nginx is not installed (scripts/test installs it)"
    ),
]

FLEET, RIDES_PER_S, SECONDS = 300, 4.0, 12


@pytest.mark.timeout(150)
def test_a_city_step_reports_fixes_rides_and_costs_without_failure(tmp_path: Path) -> None:
    out = tmp_path / "city"
    cmd = [
        sys.executable, "-m", "loadtest.run", "--fleets", str(FLEET), "--warmup", "8",
        "--seconds", str(SECONDS), "--rides-per-s", str(RIDES_PER_S), "--processes", "2",
        "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=140)
    summary_path = out / "summary.json"
    assert summary_path.exists(), f"no summary:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    summary = json.loads(summary_path.read_text())
    assert summary["ok"] and proc.returncode == 0, proc.stdout[-2000:]
    assert summary["config"]["matching"] == "immediate"
    [step] = summary["steps"]
    assert step["failures"] == {} and step["failures_in_window"] == {}, step["failures"]
    assert summary["largest_fleet_without_failures"] == FLEET
    assert step["window"]["seconds"] == SECONDS
    # Every socket sent its fixes through the counted window (3 whole intervals of 4 s).
    fixes = step["fixes"]
    assert fixes["per_s"] == pytest.approx(FLEET / 4, rel=0.1), fixes
    assert 0 < fixes["p50_ms"] <= fixes["p99_ms"] <= fixes["max_ms"]
    rides = step["rides"]
    assert rides["count"] == pytest.approx(RIDES_PER_S * SECONDS, abs=3), rides
    assert rides["p50_ms"] <= rides["p99_ms"]
    # Immediate matching: the answer is the offer, so the match latency is the request's.
    assert step["ride_outcomes"].get("offered", 0) > 0, step["ride_outcomes"]
    assert step["match_latency"]["count"] == step["ride_outcomes"]["offered"]
    for group in ("instances", "nginx", "redis", "locust"):
        cost = step["cost"][group]
        assert cost["cores"] > 0 and cost["ms_per_fix"] > 0 and cost["ms_per_ride"] > 0, group
    assert set(step["cpu_cores"]) >= {"dispatch-1", "dispatch-2", "dispatch-3", "nginx"}
    assert sum(k.startswith("redis_") for k in step["cpu_cores"]) == 6
    # The backend afterwards: every acknowledged ride is there, no driver holds two.
    assert summary["redis"]["acknowledged_rides"] > 0
    assert summary["lost_rides"] == 0 and summary["doubled_rides"] == 0
    assert summary["nginx"]["5xx"] == 0
