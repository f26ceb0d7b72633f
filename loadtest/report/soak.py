"""Resource figures over a run: every instance's RSS and open fds, Redis memory and key
counts (per region and per key family), sampled every few seconds in a thread; then a
slope check per series and a plot.

A leak shows as a steady climb while the load holds steady, so each series gets a
least-squares line over the steady part of the run and is flagged when it rises beyond
noise: the slope is more than 3 standard errors above zero *and* the rise over the window
is more than 5% of the series' mean (a slope that is real but tiny is no leak worth a flag).
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from redis import Redis
from redis.cluster import RedisCluster

# A region's keys carry the region's hash tag, {r<hex>} (geo index, market, ETA model).
_REGION_TAG = re.compile(r"\{r(8[0-9a-f]{14})\}")  # an H3 cell; rider ids are {r<16 hex>}
_ANY_TAG = re.compile(r"\{[^}]*\}")
_NUMBER = re.compile(r"\d+")  # a time bucket's number (mk:{r..}:b:<minute>): one family
MIN_T_STAT = 3.0
MIN_RISE = 0.05


def proc_figures(pid: int) -> dict[str, float]:
    """RSS (MiB) and open file descriptors of a live process, from /proc."""
    rss_kb = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
                break
    if not rss_kb:
        raise ProcessLookupError(pid)  # killed, not yet reaped: no memory of its own
    return {"rss_mb": round(rss_kb / 1024, 1), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def key_counts(keys: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Keys per region (those carrying a region's tag) and per family (tags blanked,
    numbers made #)."""
    regions: Counter[str] = Counter()
    families: Counter[str] = Counter()
    for k in keys:
        m = _REGION_TAG.search(k)
        if m:
            regions[m.group(1)] += 1
        families[_NUMBER.sub("#", _ANY_TAG.sub("{}", k))] += 1
    return dict(sorted(regions.items())), dict(sorted(families.items()))


def redis_figures(client: RedisCluster) -> dict[str, Any]:
    used = 0
    for node in client.get_primaries():  # type: ignore[no-untyped-call]
        conn: Redis = client.get_redis_connection(node)
        used += int(conn.info("memory")["used_memory"])
    keys = [k.decode() for k in client.scan_iter(count=1000)]
    regions, families = key_counts(keys)
    return {
        "used_memory_mb": round(used / 2**20, 2),
        "keys": len(keys),
        "keys_by_region": regions,
        "keys_by_family": families,
    }


class Sampler(threading.Thread):
    """Samples until stopped; each sample is also appended to a JSON-lines file as it is
    taken, so a run cut short still leaves its figures."""

    def __init__(
        self, pids: dict[str, int], redis_url: str | None, every_s: float, out: Path
    ) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.pids = pids
        self.redis_url = redis_url
        self.every_s = every_s
        self.out = out
        self.samples: list[dict[str, Any]] = []
        self._done = threading.Event()

    def run(self) -> None:
        client = RedisCluster.from_url(self.redis_url) if self.redis_url else None
        start = time.monotonic()
        try:
            with self.out.open("a") as f:
                while not self._done.is_set():
                    s = self.sample(client, time.monotonic() - start)
                    self.samples.append(s)
                    f.write(json.dumps(s) + "\n")
                    f.flush()
                    self._done.wait(self.every_s)
        finally:
            if client is not None:
                client.close()

    def sample(self, client: RedisCluster | None, t: float) -> dict[str, Any]:
        s: dict[str, Any] = {"t": round(t, 1), "instances": {}}
        for name, pid in self.pids.items():
            try:
                s["instances"][name] = proc_figures(pid)
            except (FileNotFoundError, ProcessLookupError):
                pass  # killed on purpose (a chaos run) or gone: no figure, not a zero
        if client is not None:
            try:
                s["redis"] = redis_figures(client)
            except Exception as exc:  # a master being killed: a gap, not the end
                s["redis_error"] = str(exc)
        return s

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=60)


def series(samples: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Every figure as (t, value) points, named like `dispatch-1 rss_mb`, `redis keys`,
    `region 8a1f keys`."""
    out: dict[str, list[tuple[float, float]]] = {}

    def add(name: str, t: float, v: float) -> None:
        out.setdefault(name, []).append((t, float(v)))

    for s in samples:
        t = s["t"]
        for name, figs in s["instances"].items():
            for k, v in figs.items():
                add(f"{name} {k}", t, v)
        r = s.get("redis")
        if r:
            add("redis used_memory_mb", t, r["used_memory_mb"])
            add("redis keys", t, r["keys"])
            for region, n in r["keys_by_region"].items():
                add(f"region {region} keys", t, n)
            families: Counter[str] = Counter()
            for family, n in r["keys_by_family"].items():
                families[_NUMBER.sub("#", family)] += n  # (samples taken before the #)
            for family, n in families.items():
                add(f"family {family}", t, n)
    return out


def slope(points: list[tuple[float, float]]) -> dict[str, float | bool]:
    """Least-squares slope (per hour), its t statistic, the rise over the window relative
    to the mean, and whether that is an upward slope beyond noise."""
    n = len(points)
    if n < 3:
        return {"n": n, "per_hour": 0.0, "t_stat": 0.0, "rise_rel": 0.0, "flag": False}
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return {"n": n, "per_hour": 0.0, "t_stat": 0.0, "rise_rel": 0.0, "flag": False}
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    resid = sum((y - (my + b * (x - mx))) ** 2 for x, y in zip(xs, ys, strict=True))
    se = math.sqrt(resid / (n - 2) / sxx)
    t_stat = b / se if se > 0 else (math.inf if b > 0 else 0.0)
    rise_rel = b * (xs[-1] - xs[0]) / my if my else 0.0
    flag = t_stat > MIN_T_STAT and rise_rel > MIN_RISE
    return {
        "n": n,
        "per_hour": round(b * 3600, 3),
        "t_stat": round(t_stat, 1) if math.isfinite(t_stat) else 1e9,
        "rise_rel": round(rise_rel, 4),
        "flag": flag,
    }


def analyse(
    samples: list[dict[str, Any]], steady_from_s: float, steady_to_s: float
) -> dict[str, Any]:
    """Slopes over the steady window only: a ramp's climb is load, not a leak."""
    slopes = {
        name: slope([p for p in pts if steady_from_s <= p[0] <= steady_to_s])
        for name, pts in series(samples).items()
    }
    return {
        "steady_window_s": [steady_from_s, steady_to_s],
        "flagged": sorted(name for name, s in slopes.items() if s["flag"]),
        "slopes": slopes,
    }


def draw(
    samples: list[dict[str, Any]],
    png: Path,
    title: str,
    steady: tuple[float, float],
    marks: list[tuple[float, str]] | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = series(samples)
    panels = [
        ("RSS (MiB)", [k for k in s if k.endswith(" rss_mb")]),
        ("open fds", [k for k in s if k.endswith(" fds")]),
        ("Redis used memory (MiB)", ["redis used_memory_mb"]),
        ("Redis keys", ["redis keys", *sorted(k for k in s if k.startswith("region "))[:8]]),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 11), sharex=True)
    for ax, (label, names) in zip(axes, panels, strict=True):
        for name in names:
            if name in s:
                ax.plot([p[0] for p in s[name]], [p[1] for p in s[name]], label=name)
        ax.axvspan(*steady, color="tab:green", alpha=0.06)
        for t, what in marks or []:
            ax.axvline(t, color="tab:red", linestyle="--", alpha=0.7)
            if ax is axes[0]:
                ax.annotate(what, (t, 1.0), xycoords=("data", "axes fraction"), fontsize=8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if names:
            ax.legend(loc="upper left", fontsize=7)
    axes[-1].set_xlabel("seconds since start (green: the steady window the slopes use)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Judge (and plot) a run's resources.jsonl again, e.g. over another window."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m loadtest.report.soak", description=main.__doc__)
    p.add_argument("samples", type=Path, help="a run's resources.jsonl")
    p.add_argument("--steady", type=float, nargs=2, required=True, metavar=("FROM_S", "TO_S"))
    p.add_argument("--png", type=Path, default=None)
    a = p.parse_args(argv)
    samples = [json.loads(line) for line in a.samples.read_text().splitlines() if line]
    found = analyse(samples, *a.steady)
    if a.png:
        draw(samples, a.png, str(a.samples.parent.name), tuple(a.steady))
    print(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
