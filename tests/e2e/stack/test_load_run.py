"""A bounded load run through the whole stack: 3 instances, nginx, a Redis Cluster, locust."""

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

INSTANCES = {"dispatch-1", "dispatch-2", "dispatch-3"}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("load-run")
    cmd = [
        sys.executable, "-m", "loadtest.run", "--instances", "3", "--users", "200",
        "--duration", "30", "--out", str(out), "--sample-s", "5",
        # Latency limits loose enough for a shared 2-core CI machine; the invariants below
        # are what this test is about.
        "--max-p95-ms", "3000", "--max-p99-ms", "8000", "--max-fail-ratio", "0.02",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    summary_path = out / "summary.json"
    assert summary_path.exists(), f"no summary:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return json.loads(summary_path.read_text()), out


@pytest.mark.timeout(300)
def test_no_request_failed_with_a_5xx(report: tuple[dict, Path]) -> None:
    summary, _ = report
    assert summary["nginx"]["requests"] > 1000
    assert summary["nginx"]["5xx"] == 0, summary["nginx"]["5xx_examples"]
    # every nginx line carries a request id the instances' logs can be joined on
    joined = summary["nginx"]["joined_on_request_id"]
    assert joined["requests"] == summary["nginx"]["requests"]


@pytest.mark.timeout(300)
def test_no_driver_ended_up_in_two_active_rides(report: tuple[dict, Path]) -> None:
    summary, _ = report
    redis = summary["redis"]
    assert redis["rides"] > 0, "no ride was requested: the check would prove nothing"
    assert redis["drivers_in_two_active_rides"] == 0, redis["double_assignment_examples"]
    assert redis["committed_rides_not_on_their_driver_record"] == 0


@pytest.mark.timeout(300)
def test_every_instance_served_traffic(report: tuple[dict, Path]) -> None:
    summary, _ = report
    served = summary["nginx"]["by_instance"]
    assert INSTANCES <= set(served), served
    assert all(served[i] > 50 for i in INSTANCES), served


@pytest.mark.timeout(300)
def test_the_scenario_matched_rides_and_met_its_thresholds(report: tuple[dict, Path]) -> None:
    summary, out = report
    scenario = summary["scenario"]
    assert scenario["ride_outcomes"].get("offered", 0) > 0, scenario["ride_outcomes"]
    assert scenario["match_latency_ms"]["requests"] > 0
    assert scenario["scenario_failures"] == {}
    assert summary["locust_exit_code"] == 0, (out / "locust.log").read_text()[-3000:]


@pytest.mark.timeout(300)
def test_the_report_folder_is_complete(report: tuple[dict, Path]) -> None:
    _, out = report
    files = ("locust.html", "locust_stats.csv", "throughput_latency.png", "timeline.json")
    for name in (*files, "resources.png", "resources.jsonl"):
        assert (out / name).stat().st_size > 0, name
    for phase in ("metrics-before", "metrics-after"):
        assert {p.stem for p in (out / phase).glob("*.prom")} == INSTANCES


@pytest.mark.timeout(300)
def test_every_acknowledged_ride_is_in_redis(report: tuple[dict, Path]) -> None:
    summary, _ = report
    redis = summary["redis"]
    assert redis["acknowledged_rides"] > 0, "no ride was answered 201: nothing was checked"
    assert redis["acknowledged_rides_missing"] == [] and summary["lost_rides"] == 0


@pytest.mark.timeout(300)
def test_resources_were_sampled_through_the_run(report: tuple[dict, Path]) -> None:
    _, out = report
    samples = [json.loads(line) for line in (out / "resources.jsonl").read_text().splitlines()]
    assert len(samples) >= 4  # every 5 s over 30 s
    last = samples[-1]
    assert set(last["instances"]) == INSTANCES
    assert all(f["rss_mb"] > 10 and f["fds"] > 5 for f in last["instances"].values())
    assert last["redis"]["keys"] > 0 and last["redis"]["keys_by_region"]
