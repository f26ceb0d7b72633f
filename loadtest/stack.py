"""One command, the whole stack: a Redis Cluster, N `dispatch serve` instances and nginx in front.

    python -m loadtest.stack --instances 3        # Redis Cluster (3 masters + 3 replicas)
    python -m loadtest.stack --embedded           # one instance on the in-process backend

Ctrl-C or SIGTERM stops nginx, then the instances (gracefully), then Redis.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

from loadtest.instances import SERVE_CMD, DispatchInstance, instance_env
from loadtest.nginx_proc import NginxProcess, nginx_available
from loadtest.redis_procs import RedisCluster, free_port


@dataclass
class StackOptions:
    instances: int = 3
    embedded: bool = False
    port: int | None = None  # nginx; a free one if None
    jwt_secret: str | None = None  # a random one if None
    access_log: bool = True
    tie_to_parent: bool = False  # children die with the launcher even on SIGKILL
    run_dir: Path | None = None  # logs and nginx files; a temporary folder (removed) if None
    extra_env: dict[str, str] = field(default_factory=dict)  # more DISPATCH_* settings
    serve_cmd: tuple[str, ...] = SERVE_CMD
    # nginx also terminates TLS (HTTP/1.1 and HTTP/2) here, with a certificate it makes
    # for 127.0.0.1 (run_dir/nginx/tls/tls-cert.pem: clients trust that file); 0: a free one
    tls_port: int | None = None
    # nginx nodes in front of the same instances (the proxy layer's X axis): clients spread
    # over them and move to another when theirs is gone. The first is on `port`.
    gateways: int = 1
    nginx_workers: str = "1"  # each worker's 8,192 connections hold 4,096 proxied sockets


class Stack:
    def __init__(self, options: StackOptions) -> None:
        if options.embedded and options.instances != 1:
            raise ValueError(
                "the embedded backend lives in one process: --embedded means 1 instance"
            )
        if options.instances < 1:
            raise ValueError("at least one instance")
        self.options = options
        self.jwt_secret = options.jwt_secret or secrets.token_urlsafe(32)
        self._own_dir = options.run_dir is None
        self.run_dir = options.run_dir or Path(tempfile.mkdtemp(prefix="dispatch-stack-"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self._own_dir:
            # mkdtemp makes it 0700: nginx's workers (nobody under a root master) could not
            # reach the files they buffer request bodies in, and a body above 16 KB (a
            # fleet batch) was answered 500.
            self.run_dir.chmod(0o755)
        self.redis: RedisCluster | None = None
        self.instances: list[DispatchInstance] = []
        self.nginx: NginxProcess | None = None  # the first gateway
        self.gateways: list[NginxProcess] = []

    @property
    def url(self) -> str:
        assert self.nginx is not None
        return self.nginx.url

    @property
    def redis_url(self) -> str | None:
        return self.redis.url if self.redis else None

    def start(self) -> None:
        if not nginx_available():
            raise RuntimeError(
                "nginx not found: apt-get install nginx-light (scripts/test installs it), "
                "then stop the system one it starts: service nginx stop"
            )
        o = self.options
        if not o.embedded:
            self.redis = RedisCluster(tie_to_parent=o.tie_to_parent)
            self.redis.__enter__()
        for i in range(o.instances):
            env = instance_env(
                port=free_port(),
                instance_id=f"dispatch-{i + 1}",
                jwt_secret=self.jwt_secret,
                redis_cluster_url=self.redis_url,
            )
            inst = DispatchInstance(
                {**env, **o.extra_env},
                self.run_dir / f"dispatch-{i + 1}.log",
                cmd=o.serve_cmd,
                tie_to_parent=o.tie_to_parent,
            )
            self.instances.append(inst)
            inst.start()
        for inst in self.instances:  # started together, awaited together: faster start-up
            inst.wait_ready()
        for g in range(o.gateways):
            # The first node keeps the folder name it always had (run_dir/nginx).
            nginx_dir = self.run_dir / ("nginx" if g == 0 else f"nginx-{g + 1}")
            nginx_dir.mkdir(exist_ok=True)
            tls_port = None if o.tls_port is None else (o.tls_port if g == 0 else 0) or free_port()
            node = NginxProcess(
                [f"127.0.0.1:{i.port}" for i in self.instances],
                (o.port if g == 0 else None) or free_port(),
                run_dir=nginx_dir,
                access_log=o.access_log,
                tie_to_parent=o.tie_to_parent,
                tls_port=tls_port,
                worker_processes=o.nginx_workers,
            )
            self.gateways.append(node)
            node.start()
        self.nginx = self.gateways[0]

    def stop(self) -> None:
        """Front to back, so no request finds its instance gone; safe to call twice."""
        for node in self.gateways:
            node.stop()
        for inst in self.instances:
            if inst.proc and inst.proc.poll() is None:
                inst.proc.terminate()  # all at once, then wait: a graceful stop each
        for inst in self.instances:
            inst.stop()
        if self.redis:
            self.redis.__exit__()
            self.redis = None
        if self._own_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def pids(self) -> list[int]:
        procs = [i.proc for i in self.instances]
        procs += [n.proc for n in self.gateways]
        procs += [n.proc for n in self.redis.nodes] if self.redis else []
        return [p.pid for p in procs if p is not None]

    def describe(self) -> dict[str, object]:
        return {
            "url": self.url,
            "instances": {i.instance_id: i.url for i in self.instances},
            "redis_cluster_url": self.redis_url,
            "tls_url": self.nginx.tls_url if self.nginx and self.nginx.tls_port else None,
            "tls_cert": str(self.nginx.tls_cert) if self.nginx and self.nginx.tls_cert else None,
            "gateways": [n.url for n in self.gateways],
            "jwt_secret": self.jwt_secret,
            "run_dir": str(self.run_dir),
            "pids": self.pids(),
        }

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.stack", description=__doc__.split("\n")[0])
    p.add_argument("--instances", type=int, default=3)
    p.add_argument("--embedded", action="store_true", help="one instance, no Redis")
    p.add_argument("--port", type=int, default=None, help="nginx port (default: a free one)")
    p.add_argument("--run-dir", type=Path, default=None, help="keep logs here")
    p.add_argument(
        "--tls-port", type=int, default=None,
        help="also HTTPS and HTTP/2 here (0: a free port), with a certificate for 127.0.0.1",
    )  # fmt: skip
    p.add_argument("--gateways", type=int, default=1, help="nginx nodes in front")
    a = p.parse_args(argv)
    instances = 1 if a.embedded else a.instances
    options = StackOptions(
        instances=instances, embedded=a.embedded, port=a.port, run_dir=a.run_dir, tie_to_parent=True
    )
    options = replace(options, tls_port=a.tls_port, gateways=a.gateways)
    stack = Stack(options)
    # Explicitly: a launcher started from a script's background job inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    code = 0
    try:
        stack.start()
        info = stack.describe()
        (stack.run_dir / "stack.json").write_text(json.dumps(info, indent=2))
        print(f"stack up: {stack.url}", flush=True)
        print(json.dumps(info), flush=True)
        print(
            f"tokens: DISPATCH_JWT_SECRET={stack.jwt_secret} dispatch token driver d1", flush=True
        )
        while True:
            for inst in stack.instances:
                if inst.proc and inst.proc.poll() is not None:
                    print(f"{inst.instance_id} exited:\n{inst.log_tail()}", file=sys.stderr)
                    raise SystemExit(1)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        code = 0 if code in (128 + signal.SIGTERM, 128 + signal.SIGHUP) else code
    finally:
        # A second Ctrl-C must not cut the teardown short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        print("stack down", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
