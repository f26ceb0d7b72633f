"""Reads locust's `<prefix>_stats.csv`: real requests apart from the scenario's METRIC rows."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from loadtest.scenario.thresholds import METRIC


def _num(v: str) -> float:
    try:
        return float(v)
    except ValueError:
        return 0.0


def read_stats(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _row(r: dict[str, str]) -> dict[str, Any]:
    return {
        "requests": int(_num(r["Request Count"])),
        "failures": int(_num(r["Failure Count"])),
        "rps": round(_num(r["Requests/s"]), 1),
        "p50_ms": _num(r["50%"]),
        "p95_ms": _num(r["95%"]),
        "p99_ms": _num(r["99%"]),
        "max_ms": _num(r["Max Response Time"]),
    }


def summarize(rows: list[dict[str, str]]) -> dict[str, Any]:
    endpoints = {
        f"{r['Type']} {r['Name']}": _row(r)
        for r in rows
        if r["Name"] != "Aggregated" and r["Type"] != METRIC
    }
    metrics = {r["Name"]: _row(r) for r in rows if r["Type"] == METRIC}
    outcomes = {
        name.removeprefix("ride outcome: "): m["requests"]
        for name, m in metrics.items()
        if name.startswith("ride outcome: ")
    }
    asked = sum(outcomes.values())
    requests = sum(e["requests"] for e in endpoints.values())
    failures = sum(e["failures"] for e in endpoints.values())
    return {
        "requests": requests,
        "failures": failures,
        "fail_ratio": round(failures / requests, 5) if requests else None,
        "endpoints": endpoints,
        "match_latency_ms": _pick(metrics.get("match latency")),
        "offer_to_accept_ms": _pick(metrics.get("offer-to-accept")),
        "ride_outcomes": outcomes,
        "no_driver_rate": round(outcomes.get("no_driver", 0) / asked, 4) if asked else None,
        "scenario_failures": {n: m["failures"] for n, m in metrics.items() if m["failures"]},
    }


def _pick(m: dict[str, Any] | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {k: m[k] for k in ("requests", "p50_ms", "p95_ms", "p99_ms", "max_ms")}
