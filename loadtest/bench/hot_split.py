"""A dense city on a 3-master Redis Cluster under CPU quotas: its hot regions split
against unsplit, in one run; and the k-NN cost of mixed resolutions.

    python -m loadtest.bench.hot_split [--drivers 100000] [--cells C1,C2,C3]
        [--split-res 7] [--redis-quota 0.02] [--seconds 10] [--rounds 2] [--batch 50]
        [--moves 300,0] [--border-queries 3000]

--drivers drivers in the --cells res-5 cells (default: central Berlin's cell and two of
its neighbours, whose region slots all fall on the first master: the worst case a city
can meet, and the one a split is for). Each master runs in a CPU cgroup of --redis-quota
(loadtest/cgroups.py); the load processes and the figures are the scale-out bench's data
tier (loadtest/bench/scaleout.py, scaleout_load.py): index writes (batches of --batch
fixes of drivers drawn at random from the city's) and k-NN (k 10 within 2 km) at points
in the city, each alone, to saturation. Writes run once per --moves value m: m > 0, each
fix a point drawn evenly within m metres of the driver's home (where the seeding put it;
inside the city's cells), so a driver's next fix lies at most 2m from its last (0.67m on
average from home, 0.91m from an earlier such fix), as a driver moving between fixes;
0, a point drawn anywhere in the city (each fix a jump across it: split, nearly every
fix leaves its region; the stress case). Unsplit first, then `split_region` of each cell
at --split-res (its drivers re-homed by the migration, quotas lifted meanwhile), the same
load again; --rounds pairs, alternating. Target: split / unsplit >= 2 for both, with the
regions over every master. Each write step also counts the script calls a fix made
(INFO commandstats: EVALSHA over driver_upsert.lua's one HMSET a fix; a batch's calls
go one a node, for its drivers and for its regions) and the HSETs of region meta it made
(HSET: region_apply.lua writes each change's meta alone in a region of up to 3 changes,
a larger region's in one HSET; the driver's own write is an HMSET; exact).

Border cost (no quota): one cell unsplit again, then --border-queries k-NN queries on
its border with a split cell against as many inside one fine region of a split cell:
Redis CPU (all masters) and wall time per query, and the script calls and cells each
one read (counted by INFO commandstats: exact, where the CPU figures are the machine's).
Needs root (cgroups); where none can be used it says so and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from h3.api import basic_int as h3

from loadtest.bench.harness import cpu_seconds, machine
from loadtest.bench.scaleout import Meter, _exit_on_signal
from loadtest.cgroups import CgroupsUnavailable, CpuGroups, Quota
from loadtest.redis_procs import RedisCluster

TARGET = 2.0
BERLIN = h3.latlng_to_cell(52.52, 13.405, 5)
DEFAULT_CELLS = [BERLIN, *(int(c, 16) for c in ("851f1d4ffffffff", "851f1d43fffffff"))]
LIFTED = Quota(4.0)  # while seeding and migrating: no quota to speak of


def _masters_of(cluster: RedisCluster, regions: list[int]) -> dict[str, int]:
    """Regions per master (by port), from the cluster's slot map."""
    from redis.cluster import RedisCluster as Client

    client = Client(host="127.0.0.1", port=cluster.nodes[0].port)
    count: dict[str, int] = {}
    for region in regions:
        node = client.get_node_from_key(f"gi:{{r{region:x}}}:geo")  # type: ignore[no-untyped-call]
        port = str(node.port)
        count[port] = count.get(port, 0) + 1
    client.close()
    return count


async def _split(url: str, cells: list[int], res: int) -> float:
    from dispatch.adapters.redis_client import connect
    from geoindex import RedisGeoIndex

    index = RedisGeoIndex(connect(url, cluster=True, timeout_s=30), ttl_ms=3_600_000)
    t0 = time.monotonic()
    try:
        for cell in cells:
            # No instance reads the list meanwhile (the load has stopped): no wait needed.
            await index.split_region(h3.int_to_str(cell), res, settle_s=0.0)
    finally:
        await index.close()
    return round(time.monotonic() - t0, 1)


def _calls(ports: list[int]) -> dict[str, int]:
    """Script calls and the cells they read (a script's ZRANGEBYSCORE calls count in
    INFO commandstats too), summed over the masters: exact, unlike the CPU figures."""
    import redis

    total = {"script_calls": 0, "cells_read": 0, "driver_writes": 0, "hsets": 0}
    for port in ports:
        with redis.Redis(port=port) as node:
            stats = node.info("commandstats")
        total["script_calls"] += stats.get("cmdstat_evalsha", {}).get("calls", 0)
        total["cells_read"] += stats.get("cmdstat_zrangebyscore", {}).get("calls", 0)
        # driver_upsert.lua's one HMSET: a fix written to its driver's key
        total["driver_writes"] += stats.get("cmdstat_hmset", {}).get("calls", 0)
        # region_apply.lua's HSETs (one a change in a region of up to 3 changes, else one
        # a region of up to 1,000)
        total["hsets"] += stats.get("cmdstat_hset", {}).get("calls", 0)
    return total


async def _queries(
    url: str, points: list[tuple[float, float]], pids: list[int], ports: list[int]
) -> dict[str, Any]:
    from dispatch.adapters.redis_client import connect
    from geoindex import RedisGeoIndex

    index = RedisGeoIndex(connect(url, cluster=True), ttl_ms=3_600_000)
    try:
        await index.nearest(*points[0], 10, 2_000.0)  # the split list, scripts loaded
        calls0 = _calls(ports)
        cpu0 = sum(cpu_seconds(p) for p in pids)
        t0 = time.perf_counter()
        for lat, lng in points:
            await index.nearest(lat, lng, 10, 2_000.0)
        wall = time.perf_counter() - t0
        cpu = sum(cpu_seconds(p) for p in pids) - cpu0
        calls = {k: v - calls0[k] for k, v in _calls(ports).items()}
    finally:
        await index.close()
    n = len(points)
    return {
        "queries": n,
        "redis_cpu_ms_per_query": round(cpu * 1e3 / n, 4),
        "wall_ms_per_query": round(wall * 1e3 / n, 3),
        **{f"{k}_per_query": round(v / n, 3) for k, v in calls.items()},
    }


def border_points(
    split: int, unsplit: int, n: int, rng: random.Random
) -> list[tuple[float, float]]:
    """Points on the shared edge of two neighbouring cells."""
    edge = h3.cells_to_directed_edge(split, unsplit)
    (lat1, lng1), (lat2, lng2) = h3.directed_edge_to_boundary(edge)[:2]
    out = []
    for _ in range(n):
        t = rng.random()
        out.append((lat1 + t * (lat2 - lat1), lng1 + t * (lng2 - lng1)))
    return out


def inside_points(cell: int, res: int, n: int, rng: random.Random) -> list[tuple[float, float]]:
    """Points within a fifth of an edge of a fine region's centre: k-NN stays inside it."""
    lat0, lng0 = h3.cell_to_latlng(h3.cell_to_center_child(cell, res))
    reach = 0.2 * h3.average_hexagon_edge_length(res, "km") / 111.0
    return [
        (lat0 + rng.uniform(-reach, reach), lng0 + rng.uniform(-reach, reach)) for _ in range(n)
    ]


def run(a: argparse.Namespace, groups: CpuGroups, tmp: Path) -> dict[str, Any]:
    cells = [int(c, 16) for c in a.cells.split(",")] if a.cells else DEFAULT_CELLS
    quota = Quota(a.redis_quota)
    moves = [float(m) for m in a.moves.split(",")]
    writes = {writes_name(m): m for m in moves}
    workloads = [*writes, "knn"]
    meter = Meter(a, groups, tmp)
    common = [
        "--drivers",
        str(a.drivers),
        "--prefix",
        "hc",
        "--cells",
        ",".join(f"{c:x}" for c in cells),
    ]
    result: dict[str, Any] = {
        "cells": [f"{c:x}" for c in cells],
        "drivers": a.drivers,
        "split_res": a.split_res,
        "batch": a.batch,
        "moves_m": moves,
        "quota_cores_per_master": a.redis_quota,
    }
    with RedisCluster(nodes=3, replicas=0, tie_to_parent=True) as cluster:
        ports = [n.port for n in cluster.nodes]
        watch = {f"redis-{n.port}": n.proc.pid for n in cluster.nodes if n.proc is not None}
        for name, pid in watch.items():
            groups.create(name, LIFTED)
            groups.add(name, pid)
        grouped = {name: a.redis_quota for name in watch}

        def limit(q: Quota) -> None:
            for name in watch:
                groups.create(name, q)  # rewrites the group's quota

        seed = [sys.executable, "-m", "loadtest.bench.scaleout_load", "seed-index"]
        done = subprocess.run(
            [*seed, "--url", cluster.url, *common], capture_output=True, text=True, timeout=1800
        )
        if done.returncode != 0:
            raise RuntimeError(f"seeding failed: {done.stderr[-2000:]}")
        fine = [c for cell in cells for c in h3.cell_to_children(cell, a.split_res)]
        result["regions_per_master"] = {
            "unsplit": _masters_of(cluster, cells),
            "split": _masters_of(cluster, fine),
        }
        rounds: list[dict[str, Any]] = []
        split_now = False
        for r in range(a.rounds):
            one: dict[str, Any] = {}
            for state in ["unsplit", "split"] if r % 2 == 0 else ["split", "unsplit"]:
                want = state == "split"
                if want != split_now:
                    limit(LIFTED)
                    one[f"migration_to_{state}_s"] = asyncio.run(
                        _split(cluster.url, cells, a.split_res if want else 5)
                    )
                    split_now = want
                limit(quota)
                one[state] = {}
                for name, move in writes.items():
                    args = [*common, "-c", str(a.workers), "--batch", str(a.batch)]
                    args += ["--move-m", str(move)]
                    calls0 = _calls(ports)
                    step = meter.run("index-writes", cluster.url, args, watch, grouped)
                    calls = {k: v - calls0[k] for k, v in _calls(ports).items()}
                    # Exact, warm-up included: the script calls a fix made (driver and
                    # region calls, one a node each in a batch), and its regions' HSETs.
                    fixes = max(calls["driver_writes"], 1)
                    step["script_calls_per_fix"] = round(calls["script_calls"] / fixes, 3)
                    step["region_hsets_per_fix"] = round(calls["hsets"] / fixes, 3)
                    one[state][name] = step
                one[state]["knn"] = meter.run(
                    "knn", cluster.url, [*common, "-c", str(2 * a.workers)], watch, grouped
                )
                rates = ", ".join(f"{w} {one[state][w]['per_s']}/s" for w in workloads)
                print(f"round {r} {state}: {rates}", file=sys.stderr, flush=True)
            one["ratio"] = {
                w: round(one["split"][w]["per_s"] / max(one["unsplit"][w]["per_s"], 1e-9), 2)
                for w in workloads
            }
            rounds.append(one)
        result["rounds"] = rounds
        ratios = {w: [one["ratio"][w] for one in rounds] for w in workloads}
        result["ratio_range"] = {w: [min(v), max(v)] for w, v in ratios.items()}
        result["met"] = {w: min(v) >= TARGET for w, v in ratios.items()}
        # Border cost: the last cell back to res 5, the others split.
        limit(LIFTED)
        if not split_now:
            asyncio.run(_split(cluster.url, cells, a.split_res))
        asyncio.run(_split(cluster.url, cells[-1:], 5))
        rng = random.Random(1)
        neighbour = next(c for c in cells[:-1] if h3.are_neighbor_cells(c, cells[-1]))
        pids = list(watch.values())
        border = asyncio.run(
            _queries(
                cluster.url,
                border_points(neighbour, cells[-1], a.border_queries, rng),
                pids,
                ports,
            )
        )
        inside = asyncio.run(
            _queries(
                cluster.url,
                inside_points(neighbour, a.split_res, a.border_queries, rng),
                pids,
                ports,
            )
        )
        result["border"] = {
            "split_unsplit_border": border,
            "inside_one_region": inside,
            "ratio_cpu": round(
                border["redis_cpu_ms_per_query"] / max(inside["redis_cpu_ms_per_query"], 1e-9), 2
            ),
            "ratio_wall": round(
                border["wall_ms_per_query"] / max(inside["wall_ms_per_query"], 1e-9), 2
            ),
        }
    return result


def writes_name(move_m: float) -> str:
    return f"writes_{move_m:g}m" if move_m > 0 else "writes_anywhere"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench.hot_split",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--drivers", type=int, default=100_000)
    p.add_argument("--cells", default="", help="res-5 cells, hex, comma-separated")
    p.add_argument("--split-res", type=int, default=7, choices=[6, 7])
    p.add_argument("--redis-quota", type=float, default=0.02, help="cores per master")
    p.add_argument("--seconds", type=float, default=10.0, help="measured, per step")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=2, help="unsplit/split pairs, alternating")
    p.add_argument("--load-procs", type=int, default=2, help="load processes per step")
    p.add_argument("--workers", type=int, default=4, help="per load process")
    p.add_argument("--batch", type=int, default=50, help="fixes per index write")
    p.add_argument(
        "--moves",
        default="300,0",
        help="writes once per value: each fix within this many metres of the driver's "
        "home; 0: anywhere in the city (comma-separated)",
    )
    p.add_argument("--border-queries", type=int, default=3000)
    a = p.parse_args(argv)
    try:
        groups = CpuGroups()
    except (CgroupsUnavailable, OSError) as e:
        print(json.dumps({"bench": "hot_split", "error": str(e)}), file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with groups, tempfile.TemporaryDirectory(prefix="hot-split-") as tmp:
        result = {"bench": "hot_split", "cgroup": groups.version, **run(a, groups, Path(tmp))}
    result["machine"] = machine()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
