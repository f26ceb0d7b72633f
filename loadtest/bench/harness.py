"""What every service benchmark needs: servers, CPU and Redis counters, the load tools."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import orjson
import uvloop

from loadtest.bench import wrk
from loadtest.instances import SERVE_CMD, DispatchInstance, instance_env
from loadtest.redis_procs import REDIS_CLI, RedisServer, die_with_parent, free_port
from loadtest.scenario.tokens import mint

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children still alive (nginx workers)."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return total


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def redis_calls(ports: list[int]) -> dict[str, int]:
    """Calls per command summed over the given servers (INFO commandstats)."""
    calls: dict[str, int] = {}
    for port in ports:
        out = subprocess.run(
            [REDIS_CLI, "-p", str(port), "INFO", "commandstats"],
            capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip
        for line in out.splitlines():
            if line.startswith("cmdstat_"):
                name, rest = line[len("cmdstat_") :].split(":", 1)
                n = int(rest.split("calls=")[1].split(",")[0])
                calls[name] = calls.get(name, 0) + n
    return calls


def calls_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    skip = {
        "info",
        "ping",
        "cluster|info",
        "cluster|slots",
        "cluster|shards",
        "command",
        "config|get",
    }
    return {
        k: v - before.get(k, 0) for k, v in after.items() if k not in skip and v != before.get(k, 0)
    }


class Servers:
    """Processes under measurement; all stopped on exit."""

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret or secrets.token_urlsafe(24)
        self.dir = Path(tempfile.mkdtemp(prefix="bench-"))
        self.instances: list[DispatchInstance] = []
        self.others: list[subprocess.Popen[bytes]] = []

    def dispatch(
        self,
        name: str,
        backend: dict[str, str],
        extra: dict[str, str] | None = None,
        profile: str | None = None,
    ) -> DispatchInstance:
        """A `dispatch serve` on a free port; with `profile`, under loadtest.bench.profiled
        (cProfile switched by signals, see there), writing its stats to that file."""
        env = instance_env(free_port(), name, self.secret)
        cmd: tuple[str, ...] = SERVE_CMD
        if profile:
            cmd = (sys.executable, "-m", "loadtest.bench.profiled", profile, "serve")
        inst = DispatchInstance(
            {**env, **backend, **(extra or {})}, self.dir / f"{name}.log", cmd, tie_to_parent=True
        )
        self.instances.append(inst)
        inst.start()
        inst.wait_ready()
        return inst

    def location_script(self, prefix: str, drivers: int) -> Path:
        """A wrk script sending location updates for `drivers` drivers, each with a
        token signed with this run's secret."""
        ids = [f"{prefix}{i}" for i in range(drivers)]
        tokens = [mint("driver", d, self.secret) for d in ids]
        return wrk.write_script(self.dir / f"{prefix}-loc.lua", ids, tokens)

    def ceiling(self) -> tuple[str, int]:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadtest.bench.ceiling", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent,
        )  # fmt: skip
        self.others.append(proc)
        _wait_http(f"http://127.0.0.1:{port}/readyz")
        return f"http://127.0.0.1:{port}", proc.pid

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        for inst in self.instances:
            inst.stop()
        for proc in self.others:
            proc.terminate()
            proc.wait(timeout=10)


def _wait_http(url: str, timeout: float = 15.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not up after {timeout}s")


def loadgen(mode: str, url: str, secret: str, *args: str) -> dict[str, Any]:
    """Runs the asyncio load generator in its own process; adds the CPU it used."""
    cmd = [sys.executable, "-m", "loadtest.bench.loadgen", mode, "--url", url, f"--secret={secret}"]
    proc = subprocess.Popen(
        [*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen {mode} failed: {err[-2000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


@contextmanager
def measured(pids: dict[str, int], redis_ports: list[int]) -> Iterator[dict[str, Any]]:
    """CPU seconds of each pid and Redis calls spent inside the block."""
    result: dict[str, Any] = {}
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    calls0 = redis_calls(redis_ports) if redis_ports else {}
    t0 = time.perf_counter()
    yield result
    result["wall_s"] = time.perf_counter() - t0
    result["cpu_s"] = {k: round(cpu_seconds(p) - cpu0[k], 3) for k, p in pids.items()}
    if redis_ports:
        result["redis_calls"] = calls_delta(calls0, redis_calls(redis_ports))


def machine() -> dict[str, Any]:
    """The conditions of the run: these machines are shared, so say how busy it was."""
    return {"cpus": os.cpu_count(), "loadavg_1m_at_end": round(os.getloadavg()[0], 2)}


def median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def run_on_redis(
    redis_url: str | None, bench: Callable[[str], Coroutine[Any, Any, dict[str, Any]]]
) -> None:
    """Run an async bench against `redis_url`, or a redis-server of its own when None,
    and print its result as JSON."""
    with ExitStack() as stack:
        url = redis_url or stack.enter_context(RedisServer()).url
        result = uvloop.run(bench(url))
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


def callgrind_counting(on: bool) -> None:
    """Switches this process's counting on or off, when it runs under `callgrind_run`."""
    args = ["callgrind_control", "-i", "on" if on else "off", str(os.getpid())]
    subprocess.run(args, stdout=subprocess.DEVNULL, check=True)


def callgrind_run(module_args: list[str], out_file: str = "/dev/null") -> tuple[int, str]:
    """`python -m <module_args>` under valgrind's callgrind, counting only where the
    process switches counting on (callgrind_counting), with PYTHONHASHSEED fixed (0 unless
    set) so that a run repeats: (instructions counted, its standard output)."""
    cmd = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no",
        f"--callgrind-out-file={out_file}", sys.executable, "-m", *module_args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no count from callgrind for {module_args}: {done.stderr[-2000:]}")
    return int(found.group(1)), done.stdout
