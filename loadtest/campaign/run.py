"""The failover campaign (a benchmark, not CI):

    python -m loadtest.campaign [--faults 30] [--seed 1] [--durable off|1:200] [--out DIR]

A 6-node Redis Cluster, two `dispatch serve` instances, ride and location load through
both, and a fault schedule drawn from the seed (loadtest/campaign/faults.py), each fault
healed before the next. Afterwards, with the offers left standing given time to run out,
the history and the final Redis state go through the checker; the report (per fault
kind: faults, operations, errors by status, acknowledged writes lost, double bookings,
longest unavailability) is printed as JSON and written with the history to --out."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import RedisCluster as AsyncCluster

from loadtest.bench.harness import machine
from loadtest.campaign import faults as f
from loadtest.campaign.checker import check, report
from loadtest.campaign.history import Fault
from loadtest.campaign.load import Load, fixes, online, rider
from loadtest.campaign.state import final_state
from loadtest.instances import DispatchInstance, instance_env
from loadtest.redis_procs import RedisCluster, free_port

OFFER_TIMEOUT_S = 3
SETTLE_S = OFFER_TIMEOUT_S + 5 + 2  # an offer's timeout, a claimed timer's retry, slack


def instance_settings(durable: str) -> dict[str, str]:
    return {
        # Immediate matching: a rider takes the driver its request's answer names, and
        # the checker holds every ride to its driver from there (searching rides would
        # still be matching, offered to drivers who never answer, when it looks).
        "DISPATCH_MATCH_WINDOW_MS": "0",
        "DISPATCH_REDIS_TIMEOUT_S": "0.5",
        "DISPATCH_REQUEST_TIMEOUT_S": "3",
        "DISPATCH_OFFER_TIMEOUT_S": str(OFFER_TIMEOUT_S),
        "DISPATCH_DURABLE_WRITES": durable,
    }


async def inject(
    kind: str, cluster: RedisCluster, instances: list[DispatchInstance], rng: random.Random
) -> str:
    if kind == "kill_instance":
        return await asyncio.to_thread(f.kill_instance, instances, rng)
    act = {
        "kill_master": f.kill_master,
        "pause_master": f.pause_master,
        "partition_master": f.partition_master,
        "kill_replica": f.kill_replica,
    }[kind]
    return await asyncio.to_thread(act, cluster, rng)


async def campaign(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    rng = random.Random(a.seed)
    secret = secrets.token_urlsafe(24)
    with RedisCluster(tie_to_parent=True) as cluster:
        instances = [
            DispatchInstance(
                {
                    **instance_env(free_port(), f"C{i}", secret, cluster.url),
                    **instance_settings(a.durable),
                },
                out / f"instance-{i}.log",
                tie_to_parent=True,
            )  # fmt: skip
            for i in (1, 2)
        ]
        try:
            for inst in instances:
                inst.start()
            for inst in instances:
                await asyncio.to_thread(inst.wait_ready)
            return await _run(a, rng, cluster, instances, secret)
        finally:
            for inst in instances:
                inst.stop()


async def _run(
    a: argparse.Namespace,
    rng: random.Random,
    cluster: RedisCluster,
    instances: list[DispatchInstance],
    secret: str,
) -> dict[str, Any]:
    load_rng = random.Random(a.seed + 1)  # the load's draws do not shift the schedule's
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        load = Load([i.url for i in instances], secret, session)
        seqs = await online(load, [f"d{i}" for i in range(a.drivers)], load_rng)
        tasks = [asyncio.create_task(fixes(load, seqs, load_rng))]
        tasks += [asyncio.create_task(rider(load, w, load_rng)) for w in range(a.riders)]
        done: list[Fault] = []
        await asyncio.sleep(a.warmup_s)
        for n in range(a.faults):
            kind = a.kinds[n % len(a.kinds)] if a.cycle else rng.choice(a.kinds)
            await asyncio.sleep(rng.uniform(0.3, a.gap_s))  # a random moment in the load
            at = load.now()
            target = await inject(kind, cluster, instances, rng)
            done.append(Fault(kind, at, load.now(), target))
            healed = round(load.now() - at, 2)
            note = {"fault": kind, "target": target, "at_s": round(at, 2), "healed_s": healed}
            print(json.dumps(note), file=sys.stderr, flush=True)
        await asyncio.sleep(a.tail_s)
        load.stopping = True
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        run_end = load.now()
        await asyncio.sleep(SETTLE_S)
    raw = AsyncCluster.from_url(cluster.url)
    try:
        rides, drivers = await final_state(raw)
    finally:
        await raw.aclose()
    findings = check(load.ops, rides, drivers, run_end, int(time.time() * 1000))
    rows = report(load.ops, done, findings, run_end)
    history = [op.to_json() for op in load.ops]
    return {
        "campaign": "failover",
        "seed": a.seed,
        "durable_writes": a.durable,
        "machine": machine(),
        "run_s": round(run_end, 1),
        "faults": [asdict(x) for x in done],
        "operations": len(load.ops),
        "rides_at_end": len(rides),
        "by_fault_kind": {k: v.to_json() for k, v in sorted(rows.items())},
        "double_bookings": [asdict(b) for b in findings.double_bookings],
        "acknowledged_writes_lost": [asdict(x) for x in findings.lost],
        "stuck_rides": findings.stuck,
        "stale_fixes_unexplained": len(findings.stale_unexplained),
        "acknowledged_fixes_lost": findings.fixes_lost,
        "_history": history,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m loadtest.campaign")
    p.add_argument("--faults", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--durable", default="off", help="DISPATCH_DURABLE_WRITES of the instances")
    p.add_argument("--kinds", default=",".join(f.KINDS), help="fault kinds to draw from")
    p.add_argument(
        "--cycle", action="store_true", help="take the kinds in turn (targets and moments drawn)"
    )
    p.add_argument("--drivers", type=int, default=40)
    p.add_argument("--riders", type=int, default=12, help="concurrent rider loops")
    p.add_argument("--gap-s", type=float, default=3.0, help="at most this long between faults")
    p.add_argument("--warmup-s", type=float, default=3.0)
    p.add_argument("--tail-s", type=float, default=3.0, help="load after the last fault")
    p.add_argument("--out", type=Path, default=None, help="history.jsonl and report.json here")
    a = p.parse_args(argv)
    a.kinds = [k for k in a.kinds.split(",") if k]
    out = a.out or Path(tempfile.mkdtemp(prefix="campaign-"))
    out.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(campaign(a, out))
    history = result.pop("_history")
    with (out / "history.jsonl").open("w") as fh:
        for line in history:
            fh.write(json.dumps(line) + "\n")
    (out / "report.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return result
