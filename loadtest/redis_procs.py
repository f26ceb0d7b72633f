"""Real redis-server processes on free ports: a single node and a 6-node cluster (3 masters).

Used by the tests and the stack launcher; never the machine's Redis on 6379: every server here
runs in a temporary directory, keeps nothing on disk and is killed at teardown.
"""

from __future__ import annotations

import ctypes
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_cluster_port() -> int:
    """A port whose cluster bus port (port + 10000) is free too, both below the kernel's
    ephemeral range: a port in that range can be taken by any outgoing connection between
    this check and the server's bind (a busy test run makes thousands)."""
    high = _ephemeral_low() - 10_001
    while True:
        port = random.randint(10_000, high)
        if _is_free(port) and _is_free(port + 10_000):
            return port


class PortTaken(RuntimeError):
    """The server exited before listening: its port went to someone else after it was picked."""


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PortTaken(f"redis-server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGTERM to the child when the thread that started it dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _cli(port: int, *args: str) -> str:
    out = subprocess.run(
        [REDIS_CLI, "-p", str(port), *args], capture_output=True, text=True, timeout=30
    )
    return out.stdout


@dataclass
class RedisNode:
    port: int
    workdir: Path
    cluster: bool = False
    # The stack launcher's servers die with it even if it is SIGKILLed (tests leave this off).
    tie_to_parent: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        for attempt in range(5):
            try:
                return self._start_once()
            except PortTaken:
                if attempt == 4:
                    raise
                self.port = free_cluster_port() if self.cluster else free_port()

    def _start_once(self) -> None:
        args = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.workdir / "redis.log"),
            # Tests run many EVALSHA per test; keep the default script cache.
        ]
        if self.cluster:
            args += [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.workdir / "nodes.conf"),
                "--cluster-node-timeout",
                "2000",
                # A replica's first full sync otherwise waits 5 s for more replicas to join
                # it; until that sync, the replica cannot be promoted.
                "--repl-diskless-sync-delay",
                "0",
            ]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # A launcher's servers get a session of their own (a Ctrl-C reaches only the
            # launcher, which stops them in order) and die with it. The tests' servers stay
            # in the test run's process group, so killing the run's group kills them too.
            start_new_session=self.tie_to_parent,
            preexec_fn=die_with_parent if self.tie_to_parent else None,
        )
        _wait_port(self.port, self.proc)

    def stop(self, sig_kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            if sig_kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class RedisServer:
    """One standalone redis-server."""

    def __init__(self, tie_to_parent: bool = False) -> None:
        self._dir = tempfile.mkdtemp(prefix="redis-single-")
        self.node = RedisNode(free_port(), Path(self._dir), tie_to_parent=tie_to_parent)

    def __enter__(self) -> RedisServer:
        self.node.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.node.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return self.node.url

    def flush(self) -> None:
        _cli(self.node.port, "FLUSHALL")


class RedisCluster:
    """Six cluster-enabled redis-servers: three masters, three replicas."""

    def __init__(self, nodes: int = 6, replicas: int = 1, tie_to_parent: bool = False) -> None:
        self._dir = tempfile.mkdtemp(prefix="redis-cluster-")
        self.nodes = [
            RedisNode(
                free_cluster_port(),
                Path(self._dir) / str(i),
                cluster=True,
                tie_to_parent=tie_to_parent,
            )
            for i in range(nodes)
        ]
        self.replicas = replicas

    def __enter__(self) -> RedisCluster:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        for n in self.nodes:
            n.workdir.mkdir(parents=True)
            n.start()
        hosts = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *hosts,
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self._wait_ok()

    def _wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node says cluster_state:ok and every replica has synced with its
        master: a replica that never synced refuses to be promoted, so a failover right
        after start-up would never happen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ready(n) for n in self.nodes):
                return
            time.sleep(0.1)
        raise RuntimeError("Redis Cluster did not reach cluster_state:ok with replicas in sync")

    @staticmethod
    def _ready(node: RedisNode) -> bool:
        if "cluster_state:ok" not in _cli(node.port, "CLUSTER", "INFO"):
            return False
        replication = _cli(node.port, "INFO", "replication")
        return "role:slave" not in replication or "master_link_status:up" in replication

    def __exit__(self, *exc: object) -> None:
        for n in self.nodes:
            n.stop(sig_kill=True)
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def masters(self) -> list[RedisNode]:
        return [n for n in self.nodes if "role:master" in _cli(n.port, "INFO", "replication")]

    def flush(self) -> None:
        for n in self.masters():
            _cli(n.port, "FLUSHALL")
