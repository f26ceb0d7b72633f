"""An nginx process on a free port with a rendered config, all its files in one run folder."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from loadtest.nginx_conf import GatewayLimits, NginxSettings, render
from loadtest.redis_procs import die_with_parent
from loadtest.tls import make_certificate

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_available() -> bool:
    return Path(NGINX).is_file()


class NginxProcess:
    """nginx in the foreground (daemon off), so killing its master ends its workers too."""

    def __init__(
        self,
        upstreams: list[str],
        port: int,
        run_dir: Path | None = None,
        access_log: bool = True,
        worker_processes: str = "1",
        tie_to_parent: bool = False,
        limits: GatewayLimits | None = None,
        # The local stack's clients are its load generator and tests on this machine:
        # not limited unless a test says so (limit_exempt=()).
        limit_exempt: tuple[str, ...] = ("127.0.0.0/8",),
        tls_port: int | None = None,  # also HTTPS and HTTP/2 there, with a fresh certificate
    ) -> None:
        self.tie_to_parent = tie_to_parent
        self.port = port
        self.run_dir = run_dir or Path(tempfile.mkdtemp(prefix="nginx-run-"))
        self._own_dir = run_dir is None
        # nginx workers run as nobody when the master is root: they need to reach the temp dirs.
        self.run_dir.chmod(0o755)
        self.access_log = self.run_dir / "access.log"
        self.error_log = self.run_dir / "error.log"
        self.conf = self.run_dir / "nginx.conf"
        settings = NginxSettings(
            upstreams=tuple(upstreams),
            listen=f"127.0.0.1:{port}",
            run_dir=str(self.run_dir),
            access_log=str(self.access_log) if access_log else "off",
            error_log=str(self.error_log),
            worker_processes=worker_processes,
            limits=limits or GatewayLimits(),
            limit_exempt=limit_exempt,
        )
        self.tls_port = tls_port
        self.tls_cert: Path | None = None
        if tls_port is not None:
            self.tls_cert, key = make_certificate(self.run_dir / "tls")
            settings = replace(
                settings,
                tls_listen=f"127.0.0.1:{tls_port}",
                tls_cert=str(self.tls_cert),
                tls_key=str(key),
            )
        self.conf.write_text(render(settings))
        self.proc: subprocess.Popen[bytes] | None = None

    def _args(self, *extra: str) -> list[str]:
        # -p and -e keep nginx away from its compiled-in prefix and /var/log/nginx.
        return [
            NGINX,
            "-p",
            str(self.run_dir),
            "-e",
            str(self.error_log),
            "-c",
            str(self.conf),
            *extra,
        ]

    def check(self) -> None:
        """`nginx -t`: raises with nginx's own message if the config is invalid."""
        out = subprocess.run(self._args("-t"), capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{out.stderr}")

    def start(self, timeout: float = 10.0) -> None:
        self.check()
        self.proc = subprocess.Popen(
            self._args(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent if self.tie_to_parent else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.error_log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx does not listen on {self.port} after {timeout}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM = fast shutdown of master and workers
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._own_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        assert self.tls_port is not None, "started without tls_port"
        return f"https://127.0.0.1:{self.tls_port}"

    def __enter__(self) -> NginxProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
