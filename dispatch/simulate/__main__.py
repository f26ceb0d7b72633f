"""`python -m dispatch.simulate`: matching policies side by side on one seeded city.

    python -m dispatch.simulate --policy immediate,batched --window-ms 1000,2000,4000 \
        [--seed 1] [--minutes 60] [--drivers 300]

Prints one JSON object: the city's settings, and per policy (and window) its KPIs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from dataclasses import asdict, replace

import orjson

from dispatch.domain.assignment import Objective
from dispatch.settings import Settings
from dispatch.simulate.city import SimCity
from dispatch.simulate.run import run_policy


def runs(policies: list[str], windows: list[int]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for p in policies:
        if p == "immediate":
            out.append((p, 0))
        elif p == "batched":
            out.extend((p, w) for w in windows)
        else:
            raise SystemExit(f"unknown policy {p!r}: immediate or batched")
    return out


async def simulate(args: argparse.Namespace) -> dict[str, object]:
    city = SimCity()
    if args.demand != 1.0:
        city = replace(
            city, base_per_s=city.base_per_s * args.demand, rush_per_s=city.rush_per_s * args.demand
        )
    seconds = args.minutes * 60
    scale = seconds / 3600  # the rush hour sits in the middle third of any run
    city = replace(city, rush_from_s=1200 * scale, rush_to_s=2400 * scale)
    requests = city.requests(random.Random(args.seed), seconds)
    objective = Objective() if args.penalty_s is None else Objective(penalty_s=args.penalty_s)
    results = []
    for policy, window in runs(args.policy.split(","), [int(w) for w in args.window_ms.split(",")]):
        kpis = await run_policy(
            city, requests, seconds, args.seed, args.drivers, window, objective, args.max_wait_s
        )
        results.append({"policy": policy, "window_ms": window, **kpis})
    return {
        "seed": args.seed,
        "minutes": args.minutes,
        "drivers": args.drivers,
        "city": asdict(city),
        "objective": asdict(objective),
        "max_wait_s": Settings().match_max_wait_s if args.max_wait_s is None else args.max_wait_s,
        "runs": results,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dispatch.simulate", description=__doc__)
    p.add_argument("--policy", default="immediate,batched")
    p.add_argument("--window-ms", default="2000")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--minutes", type=int, default=60)
    p.add_argument("--drivers", type=int, default=300)
    p.add_argument("--demand", type=float, default=1.0, help="scales every request rate")
    p.add_argument("--penalty-s", type=float, help="batched: a rider's cost of no match")
    p.add_argument("--max-wait-s", type=float, help="batched: searching this long ends no_driver")
    args = p.parse_args(argv)
    out = asyncio.run(simulate(args))
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
