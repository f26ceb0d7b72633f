"""Chaos under load: faults injected into the running stack at set times of a locust run,
and what each did to the clients.

    python -m loadtest.run --chaos kill-master,kill-instance,kill-nginx
    python -m loadtest.run --chaos kill-master@40,kill-nginx@80

A fault without a time (@seconds since the load started) is spread evenly over the hold
phase with the others. Each kills with SIGKILL, without a restart: the stack must carry on
with one part fewer (a Redis master's replica is promoted; nginx leaves a dead instance
out; clients of a dead nginx move to the other node).

For each fault the report gives what the clients saw from it until the next fault (or the
end): their failures by status (a class name where no HTTP answer came), the error window
(the first and the last error, a 5xx or no answer, in seconds from the fault) and the
recovery time (from the fault to its last error; 0 when there was none).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

FAULTS = ("kill-master", "kill-instance", "kill-nginx")


@dataclass(frozen=True)
class Fault:
    name: str
    at_s: float  # since the load started


def schedule(spec: str, duration_s: float, ramp_s: float) -> list[Fault]:
    """`kill-master,kill-instance@50,kill-nginx` -> faults by time. Untimed ones are
    spread evenly over the hold phase, between the timed ones' slots."""
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if not items:
        raise ValueError("--chaos needs at least one fault")
    hold = (ramp_s, duration_s - ramp_s)
    if hold[1] <= hold[0]:
        raise ValueError(f"a {duration_s:g} s run with {ramp_s:g} s ramps has no hold phase")
    step = (hold[1] - hold[0]) / (len(items) + 1)
    out = []
    for i, item in enumerate(items):
        name, _, at = item.partition("@")
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}: one of {', '.join(FAULTS)}")
        try:
            at_s = float(at) if at else hold[0] + step * (i + 1)
        except ValueError:
            raise ValueError(f"{item!r}: the time after @ is seconds, e.g. {name}@30") from None
        if not 0 < at_s < duration_s:
            raise ValueError(f"{item!r}: the time must be within the {duration_s:g} s run")
        out.append(Fault(name, at_s))
    if len(out) > 1 and len({f.name for f in out}) < len(out):
        raise ValueError("each fault at most once: the stack has one part to spare of each")
    return sorted(out, key=lambda f: f.at_s)


def kill(stack: Any, fault: str) -> str:
    """SIGKILL one part of the stack; returns what was killed. Never the parts the report
    reads afterwards: not the Redis node the stack's URL names, not the first nginx."""
    if fault == "kill-master":
        assert stack.redis is not None, "kill-master needs the Redis Cluster (not --embedded)"
        url_port = int(stack.redis.url.rsplit(":", 1)[1].split("/")[0])
        node = next(n for n in stack.redis.masters() if n.port != url_port)
        node.stop(sig_kill=True)
        return f"redis master :{node.port}"
    if fault == "kill-instance":
        if len(stack.instances) < 2:
            raise ValueError("kill-instance needs at least 2 instances")
        inst = stack.instances[-1]
        inst.proc.kill()
        return str(inst.instance_id)
    if fault == "kill-nginx":
        if len(stack.gateways) < 2:
            raise ValueError("kill-nginx needs at least 2 nginx nodes (--gateways 2)")
        node = stack.gateways[-1]
        os.killpg(node.proc.pid, signal.SIGKILL)  # master and workers at once
        return f"nginx {node.url}"
    raise ValueError(fault)


class Injector(threading.Thread):
    """Injects each fault at its time after `start_at` (a time.time()); books when."""

    def __init__(self, stack: Any, faults: list[Fault], start_at: float) -> None:
        super().__init__(name="chaos", daemon=True)
        self.stack = stack
        self.faults = faults
        self.start_at = start_at
        self.done: list[dict[str, Any]] = []
        self._cancel = threading.Event()

    def run(self) -> None:
        for fault in self.faults:
            if self._cancel.wait(max(0.0, self.start_at + fault.at_s - time.time())):
                return
            at = time.time()
            try:
                what = kill(self.stack, fault.name)
            except Exception as exc:  # reported, and the run goes on without it
                what = f"not injected: {exc}"
            self.done.append({"fault": fault.name, "at": at, "target": what})

    def cancel(self) -> None:
        self._cancel.set()
        self.join(timeout=30)


def is_error(row: dict[str, Any]) -> bool:
    """No HTTP answer, or a 5xx: what a fault causes. (A 4xx is the scenario's business.)"""
    return bool(row["status"] == 0 or row["status"] >= 500)


def impact(
    done: list[dict[str, Any]], failures: list[dict[str, Any]], start: float, end: float
) -> list[dict[str, Any]]:
    """Per injected fault, over [its time, the next fault's time or `end`): the clients'
    failures by status, and the error window and recovery time from the errors among
    them. `start`: when the load started; times are time.time()."""
    out = []
    for i, d in enumerate(done):
        t0 = d["at"]
        t1 = done[i + 1]["at"] if i + 1 < len(done) else end
        rows = [r for r in failures if t0 <= r["t"] < t1]
        errors = sorted(r["t"] - t0 for r in rows if is_error(r))
        statuses = Counter(str(r["status"]) if r["status"] else "no answer" for r in rows)
        out.append(
            {
                **d,
                "at_s": round(t0 - start, 1),
                "failures": len(rows),
                "errors": len(errors),
                "failures_by_status": dict(sorted(statuses.items())),
                "error_window_s": [round(errors[0], 2), round(errors[-1], 2)] if errors else None,
                "recovery_s": round(errors[-1], 2) if errors else 0.0,
            }
        )
    return out
