"""`python -m loadtest.run --tls --gateways 2`, short: the load goes over HTTPS and wss
(every line of both nginx nodes' access logs says TLS), the users spread over both nodes,
and the certificates are verified, not skipped (no failure at all)."""

from __future__ import annotations

import json
import re
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


@pytest.mark.timeout(240)
def test_a_tls_load_run_over_two_gateways(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "loadtest.run", "--instances", "2", "--users", "20",
        "--duration", "15", "--ramp-s", "3", "--tls", "--gateways", "2", "--out", str(out),
        "--max-p95-ms", "3000", "--max-p99-ms", "8000",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=200)
    summary_path = out / "summary.json"
    assert summary_path.exists(), f"no summary:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    summary = json.loads(summary_path.read_text())
    assert summary["config"]["tls"] and summary["config"]["gateways"] == 2
    # Verified TLS: an untrusted certificate would fail every call and every socket.
    assert not (out / "failures.jsonl").exists(), (out / "failures.jsonl").read_text()[:2000]
    assert summary["redis"]["acknowledged_rides"] > 0 and summary["lost_rides"] == 0
    logs = [out / "stack" / "nginx" / "access.log", out / "stack" / "nginx-2" / "access.log"]
    for log in logs:
        lines = log.read_text().splitlines()
        # Both nodes carried requests and WebSockets, every one over TLS.
        assert any(" 101 " in ln for ln in lines) and any(" 200 " in ln for ln in lines), log
        assert all(re.search(r" tls=TLSv1\.[23]$", ln) for ln in lines), lines[:3]
    assert summary["ok"], proc.stdout[-2000:]
