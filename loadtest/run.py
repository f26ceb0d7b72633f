"""A load run from one command: the stack, a headless locust run against nginx, a report folder.

    python -m loadtest.run --instances 3 --users 200 --duration 60

The folder (default reports/<stamp>) gets locust's HTML and CSV, every instance's /metrics
before and after, a PNG of throughput and p50/p95/p99 over time, nginx's figures (status
codes, which instance served what), a Redis check (no driver in two active rides) and
summary.json. The exit code is non-zero if a threshold, the 5xx count or the Redis check fails.
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

from loadtest.report import chart, locust_csv, nginx_log, prom, redis_check, request_join, soak
from loadtest.scenario.timeline import Timeline, percentile
from loadtest.stack import Stack, StackOptions

LOCUSTFILE = Path(__file__).parent / "locustfile.py"


def locust_cmd(args: argparse.Namespace, url: str, out: Path) -> list[str]:
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-H", url, "-u", str(args.users), "-t", f"{args.duration}s",
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
    out: Path = args.out or Path("reports") / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    options = StackOptions(
        instances=1 if args.embedded else args.instances,
        embedded=args.embedded,
        run_dir=out / "stack",
        tie_to_parent=True,
    )
    started = time.time()
    with Stack(options) as stack:
        instances = {i.instance_id: i.url for i in stack.instances}
        before = prom.scrape(instances, out / "metrics-before")
        env = {**os.environ, "DISPATCH_JWT_SECRET": stack.jwt_secret}
        pids = {i.instance_id: i.proc.pid for i in stack.instances if i.proc}
        sampler = soak.Sampler(pids, stack.redis_url, args.sample_s, out / "resources.jsonl")
        sampler.start()
        try:
            with (out / "locust.log").open("w") as log:
                locust = subprocess.run(
                    locust_cmd(args, stack.url, out), env=env, stdout=log,
                    stderr=subprocess.STDOUT, timeout=args.duration + 120,
                )  # fmt: skip
        finally:
            sampler.stop()
        after = prom.scrape(instances, out / "metrics-after")
        redis = redis_check.check(stack.redis_url) if stack.redis_url else {"skipped": "embedded"}
        assert stack.nginx is not None
        access_log = stack.nginx.access_log
        instance_logs = [i.log_path for i in stack.instances]
    nginx = nginx_log.summarize(access_log)  # after nginx stopped: its log buffer is flushed
    # nginx's lines and the instances' on the request id: the failed ones with their story
    nginx["joined_on_request_id"] = request_join.join(access_log, instance_logs)
    timeline = (
        json.loads((out / "timeline.json").read_text()) if (out / "timeline.json").exists() else {}
    )
    title = f"{options.instances} instance(s), {args.users} users, {args.duration} s"
    title += f", drivers over {args.driver_mode}"
    chart.draw(timeline, out / "throughput_latency.png", title)
    stats = out / "locust_stats.csv"
    scenario = locust_csv.summarize(locust_csv.read_stats(stats)) if stats.exists() else {}
    doubles = redis.get("drivers_in_two_active_rides", 0)
    resources = _resources(args, sampler.samples, out, title)
    summary = {
        "config": {
            "instances": options.instances, "embedded": args.embedded, "users": args.users,
            "duration_s": args.duration, "driver_mode": args.driver_mode, "ping_s": args.ping_s,
            "started": datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        },
        "locust_exit_code": locust.returncode,
        "requests": overall(timeline),
        "scenario": scenario,
        "nginx": nginx,
        "redis": redis,
        "metrics_delta": {name: prom.deltas(before[name], after[name]) for name in instances},
        "resources": resources,
        "ok": locust.returncode == 0 and nginx["5xx"] == 0 and doubles == 0,
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    brief = {k: summary[k] for k in ("ok", "locust_exit_code", "requests")}
    brief |= {"5xx": nginx["5xx"], "by_instance": nginx["by_instance"], "doubles": doubles}
    brief |= {"resources_flagged": resources["flagged"]}
    print(json.dumps(brief))
    print(f"report: {out}")
    return 0 if summary["ok"] else 1


def _resources(
    args: argparse.Namespace, samples: list[dict[str, Any]], out: Path, title: str
) -> dict[str, Any]:
    """Slopes over the hold phase (ramps excluded, and the first minute of the hold, while
    caches and pools fill) and the resources plot."""
    ramp = args.ramp_s or max(1.0, 0.2 * args.duration)
    steady = (ramp + min(60.0, args.duration / 10), args.duration - ramp)
    found = soak.analyse(samples, *steady)
    soak.draw(samples, out / "resources.png", title, steady)
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
        "--sample-s", type=float, default=10.0,
        help="seconds between two samples of RSS, fds, Redis memory and keys",
    )  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
