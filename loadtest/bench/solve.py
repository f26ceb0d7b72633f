"""Benchmark: one batched-matching window solved sparse, against a dense assignment.

    python -m loadtest.bench.solve [--riders 2000] [--drivers 5000] [--k 16]
                                   [--radius-m 3000] [--seeds 5] [--repeats 7]

Per seed, a city of 15 x 15 km with hot spots (riders and drivers both crowd them) gets
`--drivers` free drivers and `--riders` pending riders; each rider's candidates are its
`--k` nearest drivers within `--radius-m` (found with a k-d tree: building the instance
is not timed), at ETA = distance x 1.3 / 8.33 m/s, and a wait of 0-10 s. Each method of
dispatch.service_layer.assignment solves it `--repeats` times (CPU time of this process,
time.process_time); the baseline is scipy's dense linear_sum_assignment over the same
objective (riders x (drivers + riders), non-edges at a huge cost), once per seed, in the
same run. Every method must reach the baseline's objective value. Prints one JSON object:
per method the p95 over repeats, then the median of those over seeds, and its ratio to
the dense solve.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from importlib.util import find_spec
from typing import Any

import numpy as np
import orjson
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from dispatch.domain.assignment import Objective
from dispatch.service_layer.assignment import METHODS, solve_arrays

CIRCUITY, SPEED_MPS = 1.3, 8.33


def city(rng: np.random.Generator, n: int, side_m: float = 15_000.0) -> np.ndarray:
    """Half spread evenly, half around five hot spots."""
    spots = rng.uniform(0.2 * side_m, 0.8 * side_m, size=(5, 2))
    even = rng.uniform(0, side_m, size=(n - n // 2, 2))
    near = spots[rng.integers(0, 5, n // 2)] + rng.normal(0, 800, size=(n // 2, 2))
    return np.vstack([even, near])


def instance(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    drivers, riders = city(rng, args.drivers), city(rng, args.riders)
    dist, idx = cKDTree(drivers).query(riders, k=args.k, distance_upper_bound=args.radius_m)
    found = np.isfinite(dist)
    rows = np.repeat(np.arange(args.riders), args.k)[found.ravel()]
    return {
        "rows": rows,
        "cols": idx[found],
        "eta": dist[found] * CIRCUITY / SPEED_MPS,
        "credit": np.array([Objective().credit_s(w) for w in rng.uniform(0, 10_000, args.riders)]),
    }


def value(objective: Objective, inst: dict[str, Any], match: np.ndarray) -> float:
    eta = {(r, c): e for r, c, e in zip(inst["rows"], inst["cols"], inst["eta"], strict=True)}
    total = 0.0
    for r, d in enumerate(match.tolist()):
        total += objective.penalty_s if d < 0 else eta[(r, d)] - inst["credit"][r]
    return total


def dense(objective: Objective, inst: dict[str, Any], n_drivers: int) -> np.ndarray:
    n = len(inst["credit"])
    cost = np.full((n, n_drivers + n), 1e12)
    cost[inst["rows"], inst["cols"]] = inst["eta"] - inst["credit"][inst["rows"]]
    cost[np.arange(n), n_drivers + np.arange(n)] = objective.penalty_s
    _, picked = linear_sum_assignment(cost)
    return np.where(picked < n_drivers, picked, -1)


def cpu_ms(fn: Any) -> tuple[float, Any]:
    start = time.process_time()
    out = fn()
    return (time.process_time() - start) * 1000, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--riders", type=int, default=2000)
    p.add_argument("--drivers", type=int, default=5000)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--radius-m", type=float, default=3000.0)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    objective = Objective()
    methods = [m for m in METHODS if m != "flow" or find_spec("ortools") is not None]
    p95: dict[str, list[float]] = {m: [] for m in methods}
    dense_ms: list[float] = []
    edges, matched = [], []
    for seed in range(args.seeds):
        inst = instance(seed, args)
        edges.append(len(inst["rows"]))
        ms, base = cpu_ms(lambda inst=inst: dense(objective, inst, args.drivers))
        dense_ms.append(ms)
        best = value(objective, inst, base)
        matched.append(int((base >= 0).sum()))
        for method in methods:
            times = []
            for _ in range(args.repeats):
                ms, match = cpu_ms(
                    lambda inst=inst, method=method: solve_arrays(
                        objective.penalty_s,
                        inst["credit"],
                        args.drivers,
                        inst["rows"],
                        inst["cols"],
                        inst["eta"],
                        method,
                    )
                )
                times.append(ms)
            if abs(value(objective, inst, match) - best) > 1e-3 * args.riders:
                raise SystemExit(f"{method} missed the optimum on seed {seed}")
            p95[method].append(float(np.percentile(times, 95)))
    dense_median = statistics.median(dense_ms)
    out = {
        "riders": args.riders,
        "drivers": args.drivers,
        "k": args.k,
        "radius_m": args.radius_m,
        "seeds": args.seeds,
        "edges_mean": statistics.mean(edges),
        "matched_mean": statistics.mean(matched),
        "dense_lsa_cpu_ms_median": round(dense_median, 1),
        "methods": {
            m: {
                "cpu_ms_p95_median": round(statistics.median(v), 2),
                "cpu_ms_p95_max": round(max(v), 2),
                "dense_over_method": round(dense_median / statistics.median(v), 1),
            }
            for m, v in p95.items()
        },
    }
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
