"""A load run from one command: the stack, a headless locust run against nginx, a report folder.

    python -m loadtest.run --instances 3 --users 200 --duration 60

The folder (default reports/<stamp>) gets locust's HTML and CSV, every instance's /metrics
before and after, a PNG of throughput and p50/p95/p99 over time, nginx's figures (status
codes, which instance served what), a Redis check (no driver in two active rides) and
summary.json. The exit code is non-zero if a threshold, the 5xx count or the Redis check fails.

Also, every run: each instance's RSS and open fds, Redis memory and keys per region sampled
every --sample-s (resources.png, and a slope check that flags a climb beyond noise over
the hold phase: a soak is `--duration 1800`); every ride a client was answered 201 for is
looked up in Redis afterwards (lost_rides). `--gateways 2` puts two nginx nodes in front,
the users spread over both and move on when theirs is gone; `--tls` sends the load
through nginx's TLS port (each node's own certificate trusted). `--chaos
kill-master,kill-instance,kill-nginx` kills those at set times of the run and reports,
per fault, the clients' errors by status, the error window and the recovery time
(loadtest/campaign/chaos.py); the plots mark the faults; the run is ok when no
acknowledged ride was lost or doubled.

`--fleets 1000,2000,3000` runs a city instead (loadtest/city_run.py): for each fleet size
in turn, that many driver sockets at one fix every --ping-s s and riders at --rides-per-s,
and the largest fleet held with p99 < 100 ms and no failure, with the instances', nginx's
and Redis's CPU per fix and per ride.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from loadtest import city_run
from loadtest.campaign import chaos
from loadtest.report import chart, locust_csv, nginx_log, prom, redis_check, request_join, soak
from loadtest.scenario.timeline import Timeline, percentile
from loadtest.stack import Stack, StackOptions

LOCUSTFILE = Path(__file__).parent / "locustfile.py"


def locust_cmd(args: argparse.Namespace, urls: list[str], out: Path) -> list[str]:
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-H", urls[0], "--gateways", ",".join(urls),
        "--rides-out", str(out / "rides.txt"), "--failures-out", str(out / "failures.jsonl"),
        "-u", str(args.users), "-t", f"{args.duration}s",
        "--csv", str(out / "locust"), "--html", str(out / "locust.html"),
        "--timeline-out", str(out / "timeline.json"),
        "--driver-mode", args.driver_mode, "--ping-s", str(args.ping_s),
        "--max-fail-ratio", str(args.max_fail_ratio),
        "--max-p95-ms", str(args.max_p95_ms), "--max-p99-ms", str(args.max_p99_ms),
        "--stop-timeout", "10", "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    if args.ramp_s:
        cmd += ["--ramp-s", str(args.ramp_s)]
    if args.processes > 1:
        cmd += ["--processes", str(args.processes)]
    return cmd


def overall(timeline: dict[str, Any]) -> dict[str, float]:
    merged = Timeline()
    merged.merge(timeline)
    hist: dict[int, int] = {}
    for _n, _f, h in merged.seconds.values():
        for k, v in h.items():
            hist[k] = hist.get(k, 0) + v
    secs = len(merged.seconds) or 1
    n = sum(r[0] for r in merged.seconds.values())
    return {
        "rps_mean": round(n / secs, 1),
        "p50_ms": percentile(hist, 0.5),
        "p95_ms": percentile(hist, 0.95),
        "p99_ms": percentile(hist, 0.99),
    }


def run(args: argparse.Namespace) -> int:
    if args.fleets:
        return city_run.run(args)
    out: Path = args.out or Path("reports") / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    ramp = args.ramp_s or max(1.0, 0.2 * args.duration)
    faults = chaos.schedule(args.chaos, args.duration, ramp) if args.chaos else []
    gateways = args.gateways or (2 if any(f.name == "kill-nginx" for f in faults) else 1)
    options = StackOptions(
        instances=1 if args.embedded else args.instances,
        embedded=args.embedded,
        run_dir=out / "stack",
        tie_to_parent=True,
        gateways=gateways,
        tls_port=0 if args.tls else None,
        extra_env={}
        if args.match_window_ms is None
        else {"DISPATCH_MATCH_WINDOW_MS": str(args.match_window_ms)},
    )
    started = time.time()
    with Stack(options) as stack:
        instances = {i.instance_id: i.url for i in stack.instances}
        before = prom.scrape(instances, out / "metrics-before")
        urls = [n.tls_url if args.tls else n.url for n in stack.gateways]
        env = {**os.environ, "DISPATCH_JWT_SECRET": stack.jwt_secret}
        if args.tls:
            # Each nginx node's own certificate, trusted by the HTTP client and WebSockets.
            bundle = out / "tls-trusted.pem"
            bundle.write_text("".join(n.tls_cert.read_text() for n in stack.gateways if n.tls_cert))
            env |= {"SSL_CERT_FILE": str(bundle), "WEBSOCKET_CLIENT_CA_BUNDLE": str(bundle)}
        pids = {i.instance_id: i.proc.pid for i in stack.instances if i.proc}
        sampler = soak.Sampler(pids, stack.redis_url, args.sample_s, out / "resources.jsonl")
        sampler.start()
        load_start = time.time()
        injector = chaos.Injector(stack, faults, load_start)
        injector.start()
        try:
            with (out / "locust.log").open("w") as log:
                locust = subprocess.run(
                    locust_cmd(args, urls, out), env=env, stdout=log,
                    stderr=subprocess.STDOUT, timeout=args.duration + 120,
                )  # fmt: skip
        finally:
            injector.cancel()
            sampler.stop()
        load_end = time.time()
        after = prom.scrape(instances, out / "metrics-after")
        acked = _lines(out / "rides.txt")
        if stack.redis_url:
            redis = redis_check.check(stack.redis_url)
            redis["acknowledged_rides"] = len(acked)
            redis["acknowledged_rides_missing"] = redis_check.missing(stack.redis_url, acked)
        else:
            redis = {"skipped": "embedded"}
        access_logs = [n.access_log for n in stack.gateways]
        instance_logs = [i.log_path for i in stack.instances]
    # After nginx stopped: its log buffer is flushed.
    nginx = nginx_log.summarize(access_logs[0])
    # nginx's lines and the instances' on the request id: the failed ones with their story
    nginx["joined_on_request_id"] = request_join.join(access_logs[0], instance_logs)
    timeline = (
        json.loads((out / "timeline.json").read_text()) if (out / "timeline.json").exists() else {}
    )
    title = f"{options.instances} instance(s), {args.users} users, {args.duration} s"
    title += f", drivers over {args.driver_mode}" + (", TLS" if args.tls else "")
    title += f", {gateways} nginx" if gateways > 1 else ""
    marks = [(d["at"], d["fault"]) for d in injector.done]
    chart.draw(timeline, out / "throughput_latency.png", title, marks)
    stats = out / "locust_stats.csv"
    scenario = locust_csv.summarize(locust_csv.read_stats(stats)) if stats.exists() else {}
    doubles = redis.get("drivers_in_two_active_rides", 0)
    lost = len(redis.get("acknowledged_rides_missing", []))
    resources = _resources(args, sampler.samples, out, title, marks, started=load_start)
    failures = [orjson.loads(x) for x in _lines(out / "failures.jsonl")]
    summary = {
        "config": {
            "instances": options.instances, "embedded": args.embedded, "users": args.users,
            "duration_s": args.duration, "driver_mode": args.driver_mode, "ping_s": args.ping_s,
            "gateways": gateways, "tls": args.tls, "chaos": args.chaos or None,
            "started": datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        },
        "locust_exit_code": locust.returncode,
        "requests": overall(timeline),
        "scenario": scenario,
        "nginx": nginx,
        "gateways": [nginx_log.summarize(a) for a in access_logs] if gateways > 1 else None,
        "redis": redis,
        "metrics_delta": {name: prom.deltas(before[name], after[name]) for name in instances},
        "resources": resources,
        "lost_rides": lost,
        "doubled_rides": doubles,
    }  # fmt: skip
    if faults:
        summary["chaos"] = chaos.impact(injector.done, failures, load_start, load_end)
        # Under faults, failures are expected; what must hold is that nothing was lost
        # or doubled and every fault was injected.
        injected = len(injector.done) == len(faults) and all(
            not d["target"].startswith("not injected") for d in injector.done
        )
        summary["ok"] = lost == 0 and doubles == 0 and injected
    else:
        summary["ok"] = locust.returncode == 0 and nginx["5xx"] == 0 and doubles == 0 and not lost
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    brief = {k: summary[k] for k in ("ok", "locust_exit_code", "requests")}
    brief |= {"5xx": nginx["5xx"], "by_instance": nginx["by_instance"], "doubles": doubles}
    brief |= {"lost": lost, "resources_flagged": resources["flagged"]}
    if faults:
        keys = ("fault", "at_s", "target", "errors", "error_window_s", "recovery_s")
        brief["chaos"] = [{k: c[k] for k in keys} for c in summary["chaos"]]
    print(json.dumps(brief))
    print(f"report: {out}")
    return 0 if summary["ok"] else 1


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _resources(
    args: argparse.Namespace,
    samples: list[dict[str, Any]],
    out: Path,
    title: str,
    marks: list[tuple[float, str]],
    started: float,
) -> dict[str, Any]:
    """Slopes over the hold phase (ramps excluded, and the first minute of the hold, while
    caches and pools fill) and the resources plot, with the faults marked."""
    ramp = args.ramp_s or max(1.0, 0.2 * args.duration)
    steady = (ramp + min(60.0, args.duration / 10), args.duration - ramp)
    found = soak.analyse(samples, *steady)
    relative = [(t - started, what) for t, what in marks]
    soak.draw(samples, out / "resources.png", title, steady, relative)
    return found


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest.run", description=__doc__.split("\n")[0])
    p.add_argument("--instances", type=int, default=3)
    p.add_argument("--embedded", action="store_true", help="one instance, no Redis")
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--duration", type=int, default=60, help="seconds, ramps included")
    p.add_argument("--out", type=Path, default=None, help="report folder (reports/<stamp>)")
    p.add_argument("--driver-mode", choices=["ws", "http"], default="ws")
    p.add_argument("--ping-s", type=float, default=4.0)
    p.add_argument("--processes", type=int, default=1, help="locust worker processes")
    p.add_argument("--max-fail-ratio", type=float, default=0.01)
    p.add_argument("--max-p95-ms", type=float, default=500.0)
    p.add_argument("--max-p99-ms", type=float, default=1000.0)
    p.add_argument("--ramp-s", type=float, default=0.0, help="ramp up/down (20%% of the run)")
    p.add_argument(
        "--chaos", default="",
        help="faults during the run: kill-master,kill-instance,kill-nginx (name[@seconds])",
    )  # fmt: skip
    p.add_argument(
        "--gateways", type=int, default=0,
        help="nginx nodes, users spread over them (default 1; 2 with kill-nginx)",
    )  # fmt: skip
    p.add_argument("--tls", action="store_true", help="the load through nginx's TLS port")
    p.add_argument(
        "--sample-s", type=float, default=10.0,
        help="seconds between two samples of RSS, fds, Redis memory and keys",
    )  # fmt: skip
    p.add_argument(
        "--match-window-ms", type=int, default=None,
        help="the instances' match window (0: immediate; default: the service's, batched; "
        "a city: 0)",
    )  # fmt: skip
    city = p.add_argument_group("a city (--fleets): loadtest/city_run.py")
    city.add_argument("--fleets", default="", help="driver sockets per step, e.g. 1000,2000,3000")
    city.add_argument("--rides-per-s", type=float, default=5.0, help="ride requests a second")
    city.add_argument("--warmup", type=float, default=30.0, help="the sockets open over this")
    city.add_argument("--seconds", type=float, default=20.0, help="counted, per step")
    return p


def main(argv: list[str] | None = None) -> int:
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
