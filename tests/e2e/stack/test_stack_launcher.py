"""`python -m loadtest.stack` brings the stack up behind one URL and leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from loadtest.nginx_proc import nginx_available
from tests.e2e.stack.procs import alive, descendants
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.nginx,
    pytest.mark.skipif(
        not nginx_available(), reason="nginx is not installed (scripts/test installs it)"
    ),
]


def _start(*args: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtest.stack", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("{"):
            return proc, json.loads(line)
    proc.kill()
    pytest.fail("the stack did not come up:\n" + "".join(lines))


def _instance_ids_seen(url: str, n: int) -> set[str]:
    seen = set()
    for _ in range(n):
        with urllib.request.urlopen(url + "/healthz", timeout=5) as r:
            assert r.status == 200
            seen.add(r.headers["X-Instance-Id"])
    return seen


def nothing_left(children: set[int]) -> None:
    """Every process the stack started has exited (the last ones a moment after the
    launcher reports the stack down)."""

    def none_alive() -> bool:
        assert [pid for pid in children if alive(pid)] == []
        return True

    wait_until(none_alive, what="every process of the stack to exit")


@pytest.mark.parametrize(
    ("args", "sig", "expected_instances"),
    [
        (("--instances", "2"), signal.SIGTERM, {"dispatch-1", "dispatch-2"}),
        (("--embedded",), signal.SIGINT, {"dispatch-1"}),
    ],
    ids=["cluster-sigterm", "embedded-ctrl-c"],
)
def test_stack_serves_through_nginx_and_tears_everything_down(
    args: tuple[str, ...], sig: signal.Signals, expected_instances: set[str]
) -> None:
    proc, info = _start(*args)
    try:
        children = descendants(proc.pid)
        assert set(info["pids"]) <= children  # type: ignore[arg-type]
        assert _instance_ids_seen(str(info["url"]), 6) == expected_instances
        if "--embedded" in args:
            assert info["redis_cluster_url"] is None
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "stack down" in out
        nothing_left(children)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_an_instance_that_dies_takes_the_stack_down_with_nothing_left() -> None:
    proc, info = _start("--embedded")
    try:
        children = descendants(proc.pid)
        instance_url = next(iter(info["instances"].values()))  # type: ignore[attr-defined]
        port = int(instance_url.rsplit(":", 1)[1])
        victim = next(
            pid
            for pid in info["pids"]  # type: ignore[attr-defined]
            if f"DISPATCH_PORT={port}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
        )
        os.kill(victim, signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 1, out
        assert "exited" in out and "stack down" in out
        nothing_left(children)
    finally:
        if proc.poll() is None:
            proc.kill()
