"""The report's PNG: throughput and p50/p95/p99 latency over time, from the run's timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from loadtest.scenario.timeline import percentile  # noqa: E402


def series(timeline: dict[str, Any], window_s: int = 2) -> dict[str, list[float]]:
    """Per-window throughput (req/s), failures/s and latency percentiles (ms)."""
    if not timeline:
        return {k: [] for k in ("t", "rps", "fps", "p50", "p95", "p99")}
    seconds = sorted(int(s) for s in timeline)
    start = seconds[0]
    windows: dict[int, list[Any]] = {}
    for s in seconds:
        n, f, hist = timeline[str(s)]
        w = windows.setdefault((s - start) // window_s, [0, 0, {}])
        w[0] += n
        w[1] += f
        for k, v in hist.items():
            w[2][int(k)] = w[2].get(int(k), 0) + v
    out: dict[str, list[float]] = {k: [] for k in ("t", "rps", "fps", "p50", "p95", "p99")}
    for idx in sorted(windows):
        n, f, hist = windows[idx]
        out["t"].append(idx * window_s)
        out["rps"].append(n / window_s)
        out["fps"].append(f / window_s)
        for q in (50, 95, 99):
            out[f"p{q}"].append(percentile(hist, q / 100))
    return out


def draw(
    timeline: dict[str, Any],
    png: Path,
    title: str,
    marks: list[tuple[float, str]] | None = None,
) -> None:
    """marks: (time.time(), label) of events to draw as vertical lines (injected faults)."""
    s = series(timeline)
    start = min((int(k) for k in timeline), default=0)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    top.plot(s["t"], s["rps"], label="requests/s", color="tab:blue")
    top.plot(s["t"], s["fps"], label="failures/s", color="tab:red")
    top.set_ylabel("per second")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    for q, color in (("p50", "tab:green"), ("p95", "tab:orange"), ("p99", "tab:red")):
        bottom.plot(s["t"], s[q], label=q, color=color)
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds since start")
    bottom.legend(loc="upper left")
    bottom.grid(alpha=0.3)
    for t, label in marks or []:
        for ax in (top, bottom):
            ax.axvline(t - start, color="black", linestyle="--", alpha=0.6)
        top.annotate(label, (t - start, 1.0), xycoords=("data", "axes fraction"), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
