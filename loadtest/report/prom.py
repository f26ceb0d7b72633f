"""Scrape /metrics of every instance and read the Prometheus text format (samples only)."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)")


def parse(text: str) -> dict[str, float]:
    """`name{labels} value` lines -> {"name{labels}": value}; comments and junk ignored."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                continue
    return out


def scrape(instances: dict[str, str], folder: Path) -> dict[str, dict[str, float]]:
    """Saves each instance's /metrics as <folder>/<instance>.prom and returns them parsed."""
    folder.mkdir(parents=True, exist_ok=True)
    parsed = {}
    for name, url in instances.items():
        try:
            with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
                text = r.read().decode()
        except OSError as exc:
            text = f"# scrape failed: {exc}\n"
        (folder / f"{name}.prom").write_text(text)
        parsed[name] = parse(text)
    return parsed


def deltas(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What moved during the run (counters and gauges alike; unchanged samples left out)."""
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
