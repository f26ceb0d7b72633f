"""Locust scenario against the stack's nginx: drivers stream positions and take rides, riders ask.

    locust -f loadtest/locustfile.py --headless -H http://127.0.0.1:8080 -u 200 -t 60s \
        --csv reports/x/locust --html reports/x/locust.html

Drivers stream over a WebSocket (or one HTTP POST per ping: --driver-mode http), accept most
offers and drive the ride to the end; riders ask at hot spots with an Idempotency-Key and
sometimes cancel. A city's users are in locustfile_city.py, with this file's options.
Measurements of our own (match latency, offer-to-accept, ride outcomes) are fired as
request type METRIC so locust aggregates them across workers and writes them to its
CSV and HTML; thresholds (--max-fail-ratio, --max-p95-ms, --max-p99-ms) set the exit code.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtest.scenario import ledger
from loadtest.scenario.driver import DriverUser
from loadtest.scenario.rider import RiderUser
from loadtest.scenario.shape import RampHoldRampDown
from loadtest.scenario.thresholds import Limits, request_totals, violations
from loadtest.scenario.timeline import Named, Timeline

__all__ = ["DriverUser", "RiderUser", "RampHoldRampDown"]


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--driver-mode",
        choices=["ws", "http"],
        default="ws",
        env_var="LOADTEST_DRIVER_MODE",
        help="driver position transport",
    )
    parser.add_argument(
        "--ping-s",
        type=float,
        default=4.0,
        env_var="LOADTEST_PING_S",
        help="seconds between two positions of a driver",
    )
    parser.add_argument(
        "--jwt-secret",
        default="dispatch-dev-secret-change-me-0123456789",
        env_var="DISPATCH_JWT_SECRET",
        help="the instances' token secret",
        is_secret=True,
    )
    parser.add_argument(
        "--ramp-s",
        type=float,
        default=0.0,
        env_var="LOADTEST_RAMP_S",
        help="ramp-up and ramp-down time (default 20%% of --run-time)",
    )
    parser.add_argument(
        "--ramp-down-s",
        type=float,
        default=0.0,
        env_var="LOADTEST_RAMP_DOWN_S",
        help="ramp-down time (default: as long as the ramp up)",
    )
    parser.add_argument(
        "--rides-per-s",
        type=float,
        default=5.0,
        env_var="LOADTEST_RIDES_PER_S",
        help="CityRiderUser: ride requests a second over the whole run (open loop)",
    )
    parser.add_argument(
        "--named-timeline-out",
        default="",
        env_var="LOADTEST_NAMED_TIMELINE_OUT",
        help="write per-second histograms per request and metric, and the start time, here",
    )
    parser.add_argument(
        "--timeline-out",
        default="",
        env_var="LOADTEST_TIMELINE_OUT",
        help="write per-second throughput and latency histograms (JSON) here",
    )
    parser.add_argument(
        "--max-fail-ratio", type=float, default=0.01, env_var="LOADTEST_MAX_FAIL_RATIO"
    )
    parser.add_argument("--max-p95-ms", type=float, default=500.0, env_var="LOADTEST_MAX_P95_MS")
    parser.add_argument("--max-p99-ms", type=float, default=1000.0, env_var="LOADTEST_MAX_P99_MS")
    parser.add_argument(
        "--gateways",
        default="",
        env_var="LOADTEST_GATEWAYS",
        help="nginx nodes, comma-separated; users spread over them (default: the host)",
    )
    parser.add_argument(
        "--rides-out", default="", env_var="LOADTEST_RIDES_OUT", help="acknowledged ride ids"
    )
    parser.add_argument(
        "--failures-out",
        default="",
        env_var="LOADTEST_FAILURES_OUT",
        help="failed requests with their time and status (JSON lines)",
    )


# Module-level because locust's request event carries no environment to hang it on.
TIMELINE = Timeline()  # this process's requests; on the master, everyone's
NAMED = Named()  # the same, one timeline per request name and metric
STARTED: list[float] = []  # when the run (and its shape's clock) started, on the master


@events.request.add_listener
def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    exception: Any,
    response: Any = None,
    **_kw: Any,
) -> None:
    now = time.time()
    TIMELINE.add(now, request_type, response_time or 0.0, exception is not None)
    NAMED.add(now, request_type, name, response_time or 0.0, exception is not None)
    if exception is not None and _ENV is not None:
        ledger.failed(_ENV, request_type, name, response, exception)


_ENV: Environment | None = None  # the request event carries no environment


@events.init.add_listener
def _keep_environment(environment: Environment, **_kw: Any) -> None:
    global _ENV
    _ENV = environment


@events.report_to_master.add_listener
def _send_timeline(client_id: str, data: dict[str, Any]) -> None:
    data["timeline"] = TIMELINE.drain()
    data["named_timeline"] = NAMED.drain()


@events.worker_report.add_listener
def _merge_timeline(client_id: str, data: dict[str, Any]) -> None:
    TIMELINE.merge(data.get("timeline", {}))
    NAMED.merge(data.get("named_timeline", {}))


@events.test_start.add_listener
def _note_start(environment: Environment, **_kw: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        STARTED.append(time.time())


@events.quitting.add_listener
def _apply_thresholds(environment: Environment, **_kw: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # the master decides, over the aggregated numbers
    opts = environment.parsed_options
    assert opts is not None  # set from locust's command line, where this file runs
    limits = Limits(opts.max_fail_ratio, opts.max_p95_ms, opts.max_p99_ms)
    problems = violations(request_totals(environment), limits)
    if environment.runner is not None and environment.runner.exceptions:
        problems.append(f"{len(environment.runner.exceptions)} exceptions in the scenario")
    for p in problems:
        logging.error("threshold: %s", p)
    environment.process_exit_code = 1 if problems else 0
    if opts.timeline_out:
        Path(opts.timeline_out).write_text(json.dumps(TIMELINE.to_json()))
    if opts.named_timeline_out:
        named = {"started": STARTED[0] if STARTED else None, "by_name": NAMED.to_json()}
        Path(opts.named_timeline_out).write_text(json.dumps(named))
