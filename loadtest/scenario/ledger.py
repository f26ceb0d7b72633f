"""What the load run checks afterwards against the backend and the fault times: every ride a
rider was answered 201 for (--rides-out: one id a line), and every failed request with its
time and status (--failures-out: JSON lines; status 0 when no HTTP answer came, then the
error's class). Appends of one short line each, so the worker processes of a
distributed run can share the files."""

from __future__ import annotations

import time
from typing import Any

import orjson
from locust.env import Environment

from loadtest.scenario.thresholds import METRIC


def _append(path: str, line: bytes) -> None:
    with open(path, "ab") as f:
        f.write(line + b"\n")


def acknowledged(environment: Environment, ride_id: str) -> None:
    opts = environment.parsed_options
    path = None if opts is None else opts.rides_out
    if path:
        _append(path, ride_id.encode())


def failed(
    environment: Environment, request_type: str, name: str, response: Any, exception: Any
) -> None:
    opts = environment.parsed_options
    path = None if opts is None else opts.failures_out
    if not path or request_type == METRIC or name == "location ack":
        return  # (a stale fix's ack is the service's answer, not a failure of it)
    status = int(getattr(response, "status_code", 0) or 0)
    row = {
        "t": round(time.time(), 3),
        "type": request_type,
        "name": name,
        "status": status,
        "error": "" if status else type(exception).__name__,
    }
    _append(path, orjson.dumps(row))
