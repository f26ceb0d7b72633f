"""Schemathesis against /openapi.json of a running `dispatch serve` on Redis: every
operation (the WebSocket route is fuzzed frame by frame in test_ws_fuzz.py), examples,
coverage and fuzzing phases, positive and negative data, with a valid token for the
route's owner on every request (tests/reliability/schemathesis_hooks.py) and
schemathesis's own checks that requests without it are refused. Passing means: no 5xx, no
invalid request accepted, every status and response body as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.dispatch.conftest import SECRET, Served, serve

from .conftest import record_figure

pytestmark = [pytest.mark.slow, pytest.mark.redis]

HERE = Path(__file__).parent
ST = Path(sys.executable).parent / "schemathesis"


@pytest.fixture
def served(redis_url: str) -> Iterator[Served]:
    s = serve("--redis-url", redis_url)
    yield s
    s.stop()


def test_the_openapi_document_holds_under_fuzzing(served: Served, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.reliability.schemathesis_hooks",
        "FUZZ_JWT_SECRET": SECRET,
        "PYTHONPATH": str(HERE.parent.parent),
    }
    cmd = [
        str(ST), "--config-file", str(HERE / "schemathesis.toml"),
        "run", f"{served.url}/openapi.json",
        "--checks", "all",
        "--exclude-checks", "positive_data_acceptance",  # see schemathesis.toml
        "--mode", "all",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", "12",
        "--seed", "20261126",
        "--exclude-path", "/v1/drivers/{driver_id}/stream",
        "--request-timeout", "10",
        "--max-time", "35",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    # In a scratch folder: schemathesis keeps a .schemathesis/ of its own where it runs.
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=110, cwd=tmp_path)
    summary = [line for line in out.stdout.splitlines() if "generated" in line]
    record_figure("schemathesis", summary=summary[-1].strip() if summary else out.stdout[-300:])
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    log = "".join(served.output)
    assert "unhandled error" not in log  # no 500 was logged either
