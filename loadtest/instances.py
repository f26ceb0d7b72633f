"""`dispatch serve` subprocesses, set up only by DISPATCH_* variables, as in the compose file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from loadtest.redis_procs import die_with_parent

SERVE_CMD = (sys.executable, "-m", "dispatch", "serve")


def instance_env(
    port: int,
    instance_id: str,
    jwt_secret: str,
    redis_cluster_url: str | None = None,
    host: str = "127.0.0.1",
) -> dict[str, str]:
    """The variables an instance is started with; docker-compose.yml must use the same names."""
    env = {
        "DISPATCH_HOST": host,
        "DISPATCH_PORT": str(port),
        "DISPATCH_INSTANCE_ID": instance_id,
        "DISPATCH_JWT_SECRET": jwt_secret,
    }
    if redis_cluster_url:
        env["DISPATCH_REDIS_CLUSTER_URL"] = redis_cluster_url
    return env


class DispatchInstance:
    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        cmd: tuple[str, ...] = SERVE_CMD,
        tie_to_parent: bool = False,
    ) -> None:
        self.env = env
        self.port = int(env["DISPATCH_PORT"])
        self.instance_id = env["DISPATCH_INSTANCE_ID"]
        self.log_path = log_path
        self.cmd = cmd
        self.tie_to_parent = tie_to_parent
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            # A session of its own: Ctrl-C reaches only the launcher, which stops everyone in order.
            self.proc = subprocess.Popen(
                self.cmd,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if self.tie_to_parent else None,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.instance_id} exited; log:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.instance_id} not ready after {timeout}s; log:\n{self.log_tail()}"
        )

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (graceful: finishes requests in flight), SIGKILL if it takes too long."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
