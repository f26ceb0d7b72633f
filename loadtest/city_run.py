"""A city through `loadtest.run`: the largest fleet of driver sockets held with p99 < 100 ms
and no failure, with locust.

    python -m loadtest.run --fleets 1000,2000,3000 --processes 2 [--rides-per-s 5]
        [--warmup 30] [--seconds 20] [--match-window-ms 0]

One stack (a Redis Cluster, --instances instances, one nginx with two workers: one worker's
8,192 connections hold 4,096 proxied sockets) for all the steps; each fleet size is one
headless locust run of loadtest/locustfile_city.py (--processes workers: gevent holds
thousands of sockets a process, but one process's core does not): the driver sockets open
evenly over --warmup s, each sends a fix every --ping-s s (open loop: an ack is timed from
when its fix was due; a fix without its ack an interval later, a dropped socket, a refused
connection or an error frame is a failure), and one rider user asks for --rides-per-s rides
(open loop, a new rider each). Counted: --seconds s after the warmup and 4 s of settling,
from per-second histograms per request (so the ramps stay out). A step holds when the fixes'
and the rides' p99 are under 100 ms and nothing failed in the whole step; the run goes on
to the next size while nothing fails.

Matching: --match-window-ms 0 (immediate, the default here) answers a ride request with its
offer, so the rides' p99 is request to offer; with batched matching (e.g. 2000, the
service's default) the answer is `searching` and the offer comes with the window: the
rides' p99 is then the answer's, and the match latency (request to the read that sees the
offer, read every 0.25 s) is reported beside it.

Per-core costs: the CPU of the instances, nginx (workers included) and the Redis nodes over
the counted window, from /proc/<pid>/stat, per second and divided by the fixes and by the
rides a second (each figure holds the other's work and the idle loops: the marginal cost
per fix between two steps is the difference of CPU over the difference of fixes). The
locust processes' CPU is reported too: they share the machine's cores with the stack.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from loadtest.bench.city import TARGET_P99_MS, _nginx_errors
from loadtest.bench.harness import cpu_seconds, machine
from loadtest.nginx_conf import SOCKETS_PER_WORKER
from loadtest.report import locust_csv, nginx_log, redis_check
from loadtest.scenario.timeline import window
from loadtest.stack import Stack, StackOptions

LOCUSTFILE = Path(__file__).parent / "locustfile_city.py"
SETTLE_S = 4  # after the warmup (a distributed run spawns ~2 s late): not counted
TAIL_S = 4  # held after the window: the workers' last reports (every 3 s) may never come
DOWN_S = 2.0  # the ramp down after that
NGINX_WORKERS = 2
FIX = "WS location ack"
RIDE = "POST /v1/rides"
MATCH = "METRIC match latency"


class CpuSampler(threading.Thread):
    """Every process's CPU seconds, every second, with the wall clock: the counted window's
    share is read afterwards, once locust says when its run started."""

    def __init__(self, pids: dict[str, int], every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.every_s = every_s
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append((time.time(), {k: cpu_seconds(p) for k, p in self.pids.items()}))
            if self._done.wait(self.every_s):
                self.samples.append(
                    (time.time(), {k: cpu_seconds(p) for k, p in self.pids.items()})
                )
                return

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)

    def cores(self, start: float, end: float) -> dict[str, float]:
        """Each process's cores over [start, end], interpolated between samples."""
        return {
            k: round((_at(self.samples, end, k) - _at(self.samples, start, k)) / (end - start), 3)
            for k in self.pids
        }


def _at(samples: list[tuple[float, dict[str, float]]], t: float, key: str) -> float:
    for (t0, a), (t1, b) in zip(samples, samples[1:], strict=False):
        if t0 <= t <= t1:
            f = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
            return a[key] + f * (b[key] - a[key])
    raise ValueError(f"no CPU sample around {t}: the window is outside the step")


def locust_cmd(a: argparse.Namespace, url: str, fleet: int, out: Path) -> list[str]:
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-H", url,
        "-u", str(fleet + 1), "-t", f"{run_time(a)}s", "--ramp-s", str(a.warmup),
        "--ramp-down-s", str(DOWN_S), "--ping-s", str(a.ping_s),
        "--rides-per-s", str(a.rides_per_s), "--driver-mode", "ws",
        "--rides-out", str(out / "rides.txt"), "--failures-out", str(out / "failures.jsonl"),
        "--csv", str(out / "locust"), "--html", str(out / "locust.html"),
        "--timeline-out", str(out / "timeline.json"),
        "--named-timeline-out", str(out / "named_timeline.json"),
        # The step's own verdict is below; locust's exit code then says only that it ran.
        "--max-fail-ratio", "1", "--max-p95-ms", "1e9", "--max-p99-ms", "1e9",
        "--stop-timeout", "10", "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    if a.processes > 1:
        cmd += ["--processes", str(a.processes)]
    return cmd


def run_time(a: argparse.Namespace) -> int:
    return int(math.ceil(a.warmup + SETTLE_S + a.seconds + TAIL_S + DOWN_S))


def step(
    a: argparse.Namespace, stack: Stack, watch: dict[str, int], fleet: int, out: Path, env: Any
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "locust.log").open("w") as log:
        locust = subprocess.Popen(
            locust_cmd(a, stack.url, fleet, out), env=env, stdout=log, stderr=subprocess.STDOUT
        )
        sampler = CpuSampler({**watch, "locust": locust.pid})
        sampler.start()
        try:
            code = locust.wait(timeout=run_time(a) + 120)
        finally:
            if locust.poll() is None:
                locust.kill()
                locust.wait()
            sampler.stop()
    if not (out / "named_timeline.json").exists():
        tail = (out / "locust.log").read_text()[-3000:]
        raise RuntimeError(f"locust ended ({code}) without its timelines:\n{tail}")
    named = json.loads((out / "named_timeline.json").read_text())
    by_name: dict[str, Any] = named["by_name"]
    # The window starts after the warmup and the settling, or later, a second after the
    # last socket opened, if the load processes opened them late (up to TAIL_S).
    opened = _all_open_at(by_name.get("WS connect", {}), fleet)
    start = math.ceil(named["started"] + a.warmup + SETTLE_S)
    if opened is not None:
        start = max(start, min(opened + 1, start + TAIL_S))
    end = start + int(a.seconds)
    fixes = window(by_name.get(FIX, {}), start, end)
    rides = window(by_name.get(RIDE, {}), start, end)
    match = window(by_name.get(MATCH, {}), start, end)
    # Failures of the whole step, ramps included: a socket refused while opening counts.
    failures = {k: n for k, tl in by_name.items() if (n := sum(r[1] for r in tl.values()))}
    counted = {k: n for k, tl in by_name.items() if (n := window(tl, start, end)["failures"])}
    outcomes = {
        k.removeprefix("METRIC ride outcome: "): window(tl, start, end)["count"]
        for k, tl in by_name.items()
        if k.startswith("METRIC ride outcome: ")
    }
    cores = sampler.cores(start, end)
    groups = {
        "instances": sum(v for k, v in cores.items() if k.startswith("dispatch")),
        "nginx": cores["nginx"],
        "redis": sum(v for k, v in cores.items() if k.startswith("redis")),
        "locust": cores["locust"],
    }
    per = {
        g: {
            "cores": round(c, 3),
            "ms_per_fix": round(c * 1e3 / fixes["per_s"], 4) if fixes["per_s"] else None,
            "ms_per_ride": round(c * 1e3 / rides["per_s"], 2) if rides["per_s"] else None,
        }
        for g, c in groups.items()
    }
    stats = out / "locust_stats.csv"
    ok = (
        code == 0
        and not failures
        and fixes["count"] > 0
        and rides["count"] > 0
        and fixes["p99_ms"] < TARGET_P99_MS
        and rides["p99_ms"] < TARGET_P99_MS
    )
    return {
        "fleet": fleet,
        "locust_exit_code": code,
        "window": {"start": start, "end": end, "seconds": end - start},
        "all_sockets_open_after_s": None if opened is None else opened - named["started"],
        "fixes_expected_per_s": round(fleet / a.ping_s, 1),
        "fixes": fixes,
        "rides": rides,
        "match_latency": match,
        "ride_outcomes": outcomes,
        "failures": failures,
        "failures_in_window": counted,
        "cpu_cores": cores,
        "cost": per,
        "scenario": locust_csv.summarize(locust_csv.read_stats(stats)) if stats.exists() else {},
        "nginx_errors": _nginx_errors(stack.gateways[0].error_log) if failures else {},
        "load_average": _loadavg(),
        "ok": ok,
    }


def _all_open_at(connects: dict[str, Any], fleet: int) -> int | None:
    """The second in which the fleet's last socket opened (successful connects counted)."""
    opened = 0
    for second, (n, failed, _h) in sorted(connects.items(), key=lambda kv: int(kv[0])):
        opened += n - failed
        if opened >= fleet:
            return int(second)
    return None


def marginal(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Between two steps: the extra CPU over the extra fixes (the rides' rate is the same)."""
    out = []
    for s0, s1 in zip(steps, steps[1:], strict=False):
        d = s1["fixes"]["per_s"] - s0["fixes"]["per_s"]
        if d <= 0:
            continue
        out.append(
            {
                "fleets": [s0["fleet"], s1["fleet"]],
                **{
                    f"{g}_ms_per_fix": round(
                        (s1["cost"][g]["cores"] - s0["cost"][g]["cores"]) * 1e3 / d, 4
                    )
                    for g in ("instances", "nginx", "redis", "locust")
                },
            }
        )
    return out


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _raise_fd_limit(fleets: list[int], processes: int) -> int:
    """Children inherit it: the instances and the locust processes hold the sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = max(fleets) * 2 // max(1, processes) + 1024  # a socket and an HTTP connection each
    if need > hard:
        raise SystemExit(
            f"{max(fleets)} drivers need about {need} open files a locust process: the limit "
            f"is {hard}; more --processes, or raise it (ulimit -Hn)"
        )
    return hard


def run(a: argparse.Namespace) -> int:
    fleets = [int(x) for x in a.fleets.split(",")]
    if min(fleets) < 1 or a.warmup < 1 or a.seconds < 1 or a.rides_per_s <= 0:
        raise SystemExit("--fleets, --warmup, --seconds and --rides-per-s must be positive")
    if max(fleets) > NGINX_WORKERS * SOCKETS_PER_WORKER:
        raise SystemExit(f"nginx's {NGINX_WORKERS} workers hold at most "
                         f"{NGINX_WORKERS * SOCKETS_PER_WORKER} sockets")  # fmt: skip
    nofile = _raise_fd_limit(fleets, a.processes)
    out: Path = a.out or Path("reports") / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    window_ms = 0 if a.match_window_ms is None else a.match_window_ms
    options = StackOptions(
        instances=a.instances,
        run_dir=out / "stack",
        tie_to_parent=True,
        nginx_workers=str(NGINX_WORKERS),
        extra_env={"DISPATCH_MATCH_WINDOW_MS": str(window_ms)},
    )
    started = time.time()
    load_before = _loadavg()
    steps: list[dict[str, Any]] = []
    with Stack(options) as stack:
        env = {**os.environ, "DISPATCH_JWT_SECRET": stack.jwt_secret}
        watch = {i.instance_id: i.proc.pid for i in stack.instances if i.proc}
        watch |= {"nginx": p.pid} if (p := stack.gateways[0].proc) else {}
        assert stack.redis is not None
        watch |= {f"redis_{n.port}": n.proc.pid for n in stack.redis.nodes if n.proc}
        for fleet in fleets:
            s = step(a, stack, watch, fleet, out / f"fleet-{fleet}", env)
            steps.append(s)
            print(f"fleet {fleet}: fix p50/p99 {s['fixes']['p50_ms']}/{s['fixes']['p99_ms']} ms, "
                  f"ride {s['rides']['p50_ms']}/{s['rides']['p99_ms']} ms, failures "
                  f"{s['failures']}, ok {s['ok']}", file=sys.stderr)  # fmt: skip
            if s["failures"] or s["locust_exit_code"] != 0:
                break  # beyond what it holds at all; a p99 above the target alone goes on
        acked = [r for f in fleets for r in _lines(out / f"fleet-{f}" / "rides.txt")]
        assert stack.redis_url is not None
        redis = redis_check.check(stack.redis_url)
        redis["acknowledged_rides"] = len(acked)
        redis["acknowledged_rides_missing"] = redis_check.missing(stack.redis_url, acked)
        access_log = stack.gateways[0].access_log
    nginx = nginx_log.summarize(access_log)  # after nginx stopped: its log is flushed
    held = [s["fleet"] for s in steps if s["ok"]]
    no_failure = [s["fleet"] for s in steps if not s["failures"]]
    doubles = redis.get("drivers_in_two_active_rides", 0)
    lost = len(redis["acknowledged_rides_missing"])
    summary = {
        "config": {
            "mode": "city", "instances": a.instances, "fleets": fleets,
            "ping_s": a.ping_s, "rides_per_s": a.rides_per_s, "warmup_s": a.warmup,
            "seconds": a.seconds, "processes": a.processes, "nginx_workers": NGINX_WORKERS,
            "match_window_ms": window_ms,
            "matching": "immediate" if window_ms == 0 else f"batched ({window_ms} ms windows)",
            "open_files_limit": nofile, "target_p99_ms": TARGET_P99_MS,
            "started": datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        },
        "machine": machine(),
        "load_average": {"before": load_before, "after": _loadavg()},
        "largest_fleet_held": max(held) if held else None,
        "largest_fleet_without_failures": max(no_failure) if no_failure else None,
        "steps": steps,
        "marginal": marginal(steps),
        "nginx": {k: nginx[k] for k in ("requests", "5xx", "5xx_examples", "by_instance")},
        "redis": redis,
        "lost_rides": lost,
        "doubled_rides": doubles,
        # The run itself worked (every step ran, nothing lost or doubled, no 5xx); how large
        # a fleet it held is the figure, not the exit code.
        "ok": all(s["locust_exit_code"] == 0 for s in steps)
        and not doubles and not lost and nginx["5xx"] == 0,
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in
                      ("ok", "largest_fleet_held", "largest_fleet_without_failures")}))  # fmt: skip
    print(f"report: {out}")
    return 0 if summary["ok"] else 1


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []
