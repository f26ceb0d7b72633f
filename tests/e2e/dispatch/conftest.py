"""Real `dispatch serve` processes for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

SECRET = "e2e-secret-0123456789-0123456789-abcdef"
READY = re.compile(r"dispatch listening on http://127\.0\.0\.1:(\d+)")


@dataclass
class Served:
    proc: subprocess.Popen[str]
    port: int
    output: list[str] = field(default_factory=list)
    drain: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        if self.drain is not None:
            self.drain.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code


def serve(*args: str, env: dict[str, str] | None = None) -> Served:
    """Start `python -m dispatch serve` on a free port and wait until it listens."""
    # Immediate matching unless `env` sets a window: these tests expect a ride's answer
    # to name its driver.
    full_env = {
        **os.environ,
        "DISPATCH_JWT_SECRET": SECRET,
        "DISPATCH_MATCH_WINDOW_MS": "0",
        **(env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatch", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env,
    )  # fmt: skip
    assert proc.stdout is not None
    output: list[str] = []
    port = None
    for line in proc.stdout:
        output.append(line)
        if m := READY.search(line):
            port = int(m.group(1))
            break
    if port is None:
        proc.wait(timeout=10)
        proc.stdout.close()
        raise RuntimeError("dispatch serve did not start:\n" + "".join(output))
    # Keep draining the output so the process never blocks on a full pipe.
    drain = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
    drain.start()
    return Served(proc, port, output, drain)


@pytest.fixture
def embedded() -> Iterator[Served]:
    served = serve("--instance-id", "e2e-embedded")
    yield served
    served.stop(signal.SIGKILL if served.proc.poll() is None else signal.SIGTERM)


@pytest.fixture
def on_cluster(redis_cluster_url: str) -> Iterator[Served]:
    served = serve("--redis-cluster-url", redis_cluster_url, "--instance-id", "e2e-cluster")
    yield served
    served.stop(signal.SIGKILL if served.proc.poll() is None else signal.SIGTERM)
