"""A k-NN query's Redis instructions on each of 3 masters, split against unsplit, and the
k-NN ratio they allow under equal quotas.

    python -m loadtest.bench.split_knn_cost [--drivers 100000] [--queries 1500]
        [--concurrency 16] [--split-res 7] [--cells C1,C2,C3]

The hot-split bench's city (loadtest/bench/hot_split.py: --drivers drivers in three res-5
cells whose region slots fall on one master) on a 3-master Redis Cluster whose masters
hold the slots `redis-cli --cluster create` gives them (as in that bench), each master
under valgrind's callgrind, counting only while it reads, runs and answers a command
(`--toggle-collect=readQueryFromClient`; with --replies also while it writes replies to
its clients; instrumented only around the queries: the seeding, the split's migration and
the cluster's own traffic are not counted). The
queries are that bench's k-NN load (k 10 within 2 km at points drawn evenly over the
cells, --concurrency at a time through one index), the same points unsplit and then split
at --split-res. With --fixes, then as many index writes for each movement of --moves, in
batches of --batch, drawn as loadtest/bench/split_write_cost.py draws them: the same
count per master for writes.

--cpu: no valgrind: the same queries on a 3-master cluster (no quota), --concurrency at a
time and then one at a time, each master's user and system CPU per query from /proc (the
machine's figures) beside its node calls and scripts per query (INFO: exact): what a node
call costs a master beyond its commands' instructions.

Under equal quotas the busiest master sets the rate, so the busiest master's
instructions per query unsplit over split is the k-NN ratio a quota-bound run of
hot_split can reach ("predicted_ratio"). Instructions repeat where the CPU figures of a
quota-bound run move with the machine (the target is 2x). Cache misses are not counted:
the unsplit side's big sets cost more than their instructions say, so the prediction
leans against the split. Needs valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from h3.api import basic_int as h3

from loadtest.bench.harness import machine
from loadtest.bench.hot_split import DEFAULT_CELLS, writes_name
from loadtest.bench.scaleout_load import cell_point, homes
from loadtest.bench.split_write_cost import Callgrind, seed_city, wait_cluster_ok, write_fixes
from loadtest.redis_procs import RedisCluster

_TICK = os.sysconf("SC_CLK_TCK")
# The slots `redis-cli --cluster create` gives 3 masters (loadtest/redis_procs.py).
SLOTS = [(0, 5460), (5461, 10922), (10923, 16383)]


@contextlib.contextmanager
def _masters(replies: bool) -> Iterator[list[Callgrind]]:
    workdir = Path(tempfile.mkdtemp(prefix="split-knn-cg-"))
    masters: list[Callgrind] = []
    try:
        for i, (first, last) in enumerate(SLOTS):
            (workdir / str(i)).mkdir()
            masters.append(Callgrind(workdir / str(i), first, last, replies))
        with redis.Redis(port=masters[0].port) as node:
            for m in masters[1:]:
                node.execute_command("CLUSTER", "MEET", "127.0.0.1", m.port)
        wait_cluster_ok([m.port for m in masters])
        yield masters
    finally:
        for m in masters:
            m.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def _count(
    masters: list[Callgrind],
    points: list[tuple[float, float]],
    a: argparse.Namespace,
    cells: list[int],
    split: bool,
) -> dict[str, Any]:
    from dispatch.adapters.redis_client import connect
    from geoindex import RedisGeoIndex

    index = RedisGeoIndex(connect(masters[0].url, cluster=True, timeout_s=600), ttl_ms=3_600_000)
    calls = [0]
    inner = index._scripts.run

    async def run(batch: Any) -> list[Any]:
        calls[0] += sum(1 for c in batch if c[0].name == "knn")
        return await inner(batch)

    index._scripts.run = run  # type: ignore[method-assign,assignment]
    try:
        if split:
            for cell in cells:
                await index.split_region(h3.int_to_str(cell), a.split_res, settle_s=0.0)
        for lat, lng in points[:50]:  # scripts loaded, the split list read: not counted
            await index.nearest(lat, lng, 10, 2_000.0)
        calls[0] = 0
        for m in masters:
            m.take()
            m.instrument(True)
        left = list(points)
        found = [0]

        async def searcher() -> None:
            while left:
                lat, lng = left.pop()
                hits = await index.nearest(lat, lng, 10, 2_000.0)
                found[0] += len(hits)

        await asyncio.gather(*(searcher() for _ in range(a.concurrency)))
        for m in masters:
            m.instrument(False)
        per_master = [m.take() / len(points) for m in masters]
        out: dict[str, Any] = {
            "knn": {
                "queries": len(points),
                "drivers_found_per_query": round(found[0] / len(points), 2),
                "knn_script_calls_per_query": round(calls[0] / len(points), 3),
                **_by_master(per_master),
            }
        }
        rng = random.Random(8 if split else 7)  # not where the unsplit pass put them
        for move in a.moves if a.fixes else []:
            for m in masters:
                m.take()
                m.instrument(True)
            await write_fixes(index, a, [a.fixes], move, rng, cells)
            for m in masters:
                m.instrument(False)
            out[writes_name(move)] = {"fixes": a.fixes, **_by_master(
                [m.take() / a.fixes for m in masters]
            )}  # fmt: skip
    finally:
        await index.close()
    return out


def _user_sys(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def _reads_and_scripts(ports: list[int]) -> list[tuple[int, int]]:
    """Each master's read events handled (a node call woke it and was read) and scripts
    run, from INFO: exact."""
    out = []
    for port in ports:
        with redis.Redis(port=port) as node:
            reads = node.info("stats")["total_reads_processed"]
            scripts = node.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
        out.append((int(reads), int(scripts)))
    return out


async def _cpu(
    cluster: RedisCluster,
    points: list[tuple[float, float]],
    cells: list[int],
    split: bool,
    a: argparse.Namespace,
) -> dict[str, Any]:
    """The same queries on a cluster with no valgrind and no quota, --concurrency at a time
    and then one at a time: each master's user and system CPU per query (the machine's
    figures), and its node calls and scripts per query (exact)."""
    from dispatch.adapters.redis_client import connect
    from geoindex import RedisGeoIndex

    index = RedisGeoIndex(connect(cluster.url, cluster=True, timeout_s=60), ttl_ms=3_600_000)
    ports = [n.port for n in cluster.nodes]
    pids = [n.proc.pid for n in cluster.nodes if n.proc is not None]
    out: dict[str, Any] = {}
    try:
        if split:
            for cell in cells:
                await index.split_region(h3.int_to_str(cell), a.split_res, settle_s=0.0)
        for lat, lng in points[:50]:
            await index.nearest(lat, lng, 10, 2_000.0)
        for concurrency in (a.concurrency, 1):
            calls0, cpu0 = _reads_and_scripts(ports), [_user_sys(p) for p in pids]
            left = list(points)

            async def searcher(left: list[tuple[float, float]]) -> None:
                while left:
                    lat, lng = left.pop()
                    await index.nearest(lat, lng, 10, 2_000.0)

            await asyncio.gather(*(searcher(left) for _ in range(concurrency)))
            calls1, cpu1 = _reads_and_scripts(ports), [_user_sys(p) for p in pids]
            n = len(points)
            user = [1e6 * (b[0] - a0[0]) / n for a0, b in zip(cpu0, cpu1, strict=True)]
            system = [1e6 * (b[1] - a0[1]) / n for a0, b in zip(cpu0, cpu1, strict=True)]
            both = [u + s for u, s in zip(user, system, strict=True)]
            out[f"{concurrency}_at_a_time"] = {
                "user_us_per_query_by_master": [round(x, 1) for x in user],
                "system_us_per_query_by_master": [round(x, 1) for x in system],
                "busiest_master_us_per_query": round(max(both), 1),
                "all_masters_us_per_query": round(sum(both), 1),
                "node_calls_per_query_by_master": [
                    round((b[0] - a0[0]) / n, 3) for a0, b in zip(calls0, calls1, strict=True)
                ],
                "scripts_per_query_by_master": [
                    round((b[1] - a0[1]) / n, 3) for a0, b in zip(calls0, calls1, strict=True)
                ],
            }
    finally:
        await index.close()
    return out


def _by_master(per_master: list[float]) -> dict[str, Any]:
    return {
        "instructions_by_master": [round(x) for x in per_master],
        "instructions_all_masters": round(sum(per_master)),
        "busiest_master_instructions": round(max(per_master)),
        "busiest_master_share": round(max(per_master) / sum(per_master), 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench.split_knn_cost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--drivers", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=1500)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--cells", default="", help="res-5 cells, hex, comma-separated")
    p.add_argument("--split-res", type=int, default=7, choices=[6, 7])
    p.add_argument("--replies", action="store_true", help="count writing the replies too")
    p.add_argument("--fixes", type=int, default=0, help="index writes to count, a movement")
    p.add_argument("--batch", type=int, default=50, help="fixes per upsert")
    p.add_argument("--moves", default="300,0", help="as hot_split's --moves")
    p.add_argument("--cpu", action="store_true", help="CPU time per query instead (no valgrind)")
    a = p.parse_args(argv)
    if a.cpu:
        return _cpu_main(a)
    if shutil.which("valgrind") is None:
        print("split_knn_cost: valgrind is not installed", file=sys.stderr)
        return 2
    cells = [int(c, 16) for c in a.cells.split(",")] if a.cells else DEFAULT_CELLS
    hexcells = ",".join(f"{c:x}" for c in cells)
    a.moves = [float(m) for m in a.moves.split(",")]
    a.home = homes(argparse.Namespace(cells=hexcells, drivers=a.drivers))
    rng = random.Random(3)
    points = [cell_point(rng, cells) for _ in range(a.queries)]
    result: dict[str, Any] = {
        "bench": "split_knn_cost",
        "drivers": a.drivers,
        "split_res": a.split_res,
        "k": 10,
        "radius_m": 2000,
        "concurrency": a.concurrency,
        "counted": "commands and replies" if a.replies else "commands",
    }
    with _masters(a.replies) as masters:
        seed_city(masters[0].url, a, hexcells)
        result["unsplit"] = asyncio.run(_count(masters, points, a, cells, split=False))
        print(f"unsplit: {result['unsplit']}", file=sys.stderr, flush=True)
        result["split"] = asyncio.run(_count(masters, points, a, cells, split=True))
        print(f"split: {result['split']}", file=sys.stderr, flush=True)
    result["predicted_ratio"] = {
        w: round(
            u["busiest_master_instructions"] / result["split"][w]["busiest_master_instructions"], 3
        )
        for w, u in result["unsplit"].items()
    }
    result["target"] = 2.0
    result["machine"] = machine()
    print(json.dumps(result, indent=1))
    return 0


def _cpu_main(a: argparse.Namespace) -> int:
    cells = [int(c, 16) for c in a.cells.split(",")] if a.cells else DEFAULT_CELLS
    rng = random.Random(3)
    points = [cell_point(rng, cells) for _ in range(a.queries)]
    result: dict[str, Any] = {"bench": "split_knn_cost --cpu", "drivers": a.drivers,
                              "split_res": a.split_res, "queries": a.queries}  # fmt: skip
    with RedisCluster(nodes=3, replicas=0, tie_to_parent=True) as cluster:
        seed_city(cluster.url, a, ",".join(f"{c:x}" for c in cells))
        for split in (False, True):
            layout = "split" if split else "unsplit"
            result[layout] = asyncio.run(_cpu(cluster, points, cells, split, a))
            print(f"{layout}: {result[layout]}", file=sys.stderr, flush=True)
    busiest = "busiest_master_us_per_query"
    result["ratio"] = {
        k: round(v[busiest] / result["split"][k][busiest], 2) for k, v in result["unsplit"].items()
    }
    result["machine"] = machine()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
