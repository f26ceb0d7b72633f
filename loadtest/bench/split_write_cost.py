"""Where an index write's Redis CPU goes, split against unsplit, and the ratio it allows.

    python -m loadtest.bench.split_write_cost [--drivers 100000] [--fixes 10000]
        [--batch 50] [--writers 1] [--moves 300,0] [--split-res 7] [--cells C1,C2,C3]
        [--instructions]

The hot-split bench's city (loadtest/bench/hot_split.py: --drivers drivers in three res-5
cells whose region slots fall on one master) on a 3-master Redis Cluster, no quotas.
--writers writers on one index send --fixes fixes in all, in batches of --batch of
drivers drawn at random, each fix within m metres of the driver's home for each m of
--moves (0: anywhere in the city), as the bench's writers do; unsplit, then with the
cells split at --split-res. It reads each master's main-thread CPU (INFO cpu) around
each pass and counts the script calls and region changes (exact; the CPU figures are the
machine's). With one writer it also reads the CPU around the driver scripts and around
the region scripts of every batch, less what reading it costs (measured first).

Per fix: each master's CPU (us), region calls (a batch's regions go one call a node),
regions written and changes, and with one writer the
driver part (driver_upsert.lua) and the region part (region_apply.lua) over all masters.
Under equal quotas the busiest master sets the rate, so the busiest master's CPU per fix
unsplit over split is the write ratio a quota-bound run can reach ("predicted_ratio").

--instructions: instead, one redis-server holding every slot (a one-node cluster), under
valgrind's callgrind, counts the instructions of the driver part and of the region part
(the CPU figures move by 15 % on a shared machine; these repeat to 2 %). Each
movement is written twice, --fixes fixes each time: once counting only inside the driver
scripts' calls, once only inside the region scripts' (`callgrind_control -i on/off`
around each call, and only inside readQueryFromClient: a command read, run and answered).
--batch is then a node call's drivers (17: a batch of 50 over 3 masters). It counts no
cache misses, so it understates what a big set costs (the unsplit regions' zsets). Needs
valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from h3.api import basic_int as h3

from loadtest.bench.harness import machine
from loadtest.bench.hot_split import DEFAULT_CELLS, writes_name
from loadtest.bench.scaleout_load import cell_point, homes, near_point
from loadtest.redis_procs import REDIS_SERVER, RedisCluster, free_cluster_port

PREFIX = "hc"


def _main_cpu(node: redis.Redis) -> float:
    info = node.info("cpu")
    return float(info["used_cpu_user_main_thread"] + info["used_cpu_sys_main_thread"])


def _info_cost(nodes: list[redis.Redis], n: int = 300) -> list[float]:
    """Main-thread CPU one INFO cpu costs each node (s)."""
    out = []
    for node in nodes:
        c0 = _main_cpu(node)
        for _ in range(n):
            _main_cpu(node)
        out.append((_main_cpu(node) - c0) / (n + 1))
    return out


class Metered:
    """Wraps an index's script runner: CPU per master and calls, per script."""

    def __init__(
        self, index: Any, nodes: list[redis.Redis], info_cost: list[float], phases: bool
    ) -> None:
        self.nodes, self.info_cost = nodes, info_cost
        self.reset()
        inner = index._scripts.run

        async def run(calls: Any) -> list[Any]:
            name = calls[0][0].name if calls else ""
            replies: list[Any]
            if not phases:
                replies = await inner(calls)
            else:
                before = [_main_cpu(n) for n in self.nodes]
                replies = await inner(calls)
                after = [_main_cpu(n) for n in self.nodes]
                cpu = self.cpu.setdefault(name, [0.0] * len(self.nodes))
                for i, (a, b) in enumerate(zip(before, after, strict=True)):
                    cpu[i] += b - a - self.info_cost[i]
            self.calls[name] = self.calls.get(name, 0) + len(calls)
            if name == "region_apply":  # a call's regions: geo key, changes, 5 a change
                for _, _, args in calls:
                    at = 1
                    while at < len(args):
                        self.regions += 1
                        self.changes += int(args[at + 1])
                        at += 2 + 5 * int(args[at + 1])
            return replies

        index._scripts.run = run

    def reset(self) -> None:
        self.cpu: dict[str, list[float]] = {}
        self.calls: dict[str, int] = {}
        self.regions = 0
        self.changes = 0


async def _measure(url: str, a: argparse.Namespace, cells: list[int], split: bool) -> Any:
    from dispatch.adapters.redis_client import connect
    from geoindex import Position, RedisGeoIndex

    index = RedisGeoIndex(connect(url, cluster=True, timeout_s=30), ttl_ms=3_600_000)
    ports = [int(p) for p in a.ports]
    nodes = [redis.Redis(port=p) for p in ports]
    try:
        if split:
            for cell in cells:
                await index.split_region(h3.int_to_str(cell), a.split_res, settle_s=0.0)
        lat, lng = a.home[0]
        await index.upsert([Position(f"{PREFIX}0", lat, lng, int(time.time() * 1000))])
        phases = a.writers == 1
        info_cost = _info_cost(nodes)
        metered = Metered(index, nodes, info_cost, phases)
        out: dict[str, Any] = {}
        rng = random.Random(8 if split else 7)  # not where the unsplit pass put them
        for move in a.moves:
            metered.reset()
            cpu0 = [_main_cpu(n) for n in nodes]
            left = [a.fixes]
            await asyncio.gather(
                *(write_fixes(index, a, left, move, rng, cells) for _ in range(a.writers))
            )
            sent = a.fixes - left[0]
            cpu = [_main_cpu(n) - c - i for n, c, i in zip(nodes, cpu0, info_cost, strict=True)]
            if phases:  # the phases' own INFO calls left out
                cpu = [sum(v[i] for v in metered.cpu.values()) for i in range(len(nodes))]
            masters = [1e6 * c / sent for c in cpu]
            region_calls = metered.calls.get("region_apply", 0)
            part = {k: 1e6 * sum(v) / sent for k, v in metered.cpu.items()}
            name = writes_name(move)
            out[name] = {
                "fixes": sent,
                "driver_us_per_fix": round(part["driver_upsert"], 2) if phases else None,
                "region_us_per_fix": round(part["region_apply"], 2) if phases else None,
                "region_calls_per_fix": round(region_calls / sent, 3),
                "region_writes_per_fix": round(metered.regions / sent, 3),
                "region_changes_per_fix": round(metered.changes / sent, 3),
                "region_us_per_region": (
                    round(part["region_apply"] * sent / metered.regions, 2) if phases else None
                ),
                "per_master_us_per_fix": {
                    str(p): round(m, 2) for p, m in zip(ports, masters, strict=True)
                },
                "busiest_master_us_per_fix": round(max(masters), 2),
            }
            print(f"{'split' if split else 'unsplit'} {name}: {out[name]}",
                  file=sys.stderr, flush=True)  # fmt: skip
        return out
    finally:
        await index.close()
        for n in nodes:
            n.close()


class Callgrind:
    """A redis-server under callgrind, instrumented only when asked, holding the slots
    `first` to `last` (every slot by default: a one-node cluster; loadtest/bench/
    split_knn_cost.py joins three into one cluster)."""

    def __init__(
        self, workdir: Path, first: int = 0, last: int = 16383, replies: bool = False
    ) -> None:
        self.dir, self.port = workdir, free_cluster_port()
        # replies: the writing of replies counted too (the event loop's write pass over
        # the clients with replies pending, or the socket's write handler when a reply
        # did not fit at once): work a node call costs the master beyond its commands.
        also = [
            f"--toggle-collect={f}"
            for f in ("handleClientsWithPendingWritesUsingThreads", "sendReplyToClient")
            if replies
        ]
        cmd = [
            # Counting only inside readQueryFromClient: a command read, run and answered
            # (into the reply buffer), without the event loop's timers (serverCron's
            # memory statistics cost 200 thousand instructions a run).
            "valgrind", "--tool=callgrind", "--instr-atstart=no",
            "--toggle-collect=readQueryFromClient", *also,
            f"--callgrind-out-file={workdir / 'cg.out'}",
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(workdir), "--cluster-enabled", "yes",
            "--cluster-config-file", str(workdir / "nodes.conf"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        node = redis.Redis(port=self.port)
        for _ in range(600):
            with contextlib.suppress(redis.ConnectionError):
                node.ping()
                break
            time.sleep(0.1)
        node.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)  # type: ignore[no-untyped-call]
        if (first, last) == (0, 16383):
            wait_cluster_ok([self.port])
        node.close()
        self.dumps = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _control(self, *args: str) -> None:
        cmd = ["callgrind_control", *args, str(self.proc.pid)]
        subprocess.run(cmd, capture_output=True, check=True)

    def instrument(self, on: bool) -> None:
        self._control("-i", "on" if on else "off")

    def take(self) -> int:
        """Instructions counted since the last take (a dump zeroes the counts)."""
        self._control("-d")
        self.dumps += 1
        text = (self.dir / f"cg.out.{self.dumps}").read_text()
        found = re.search(r"^totals: (\d+)", text, re.M)  # its "summary:" reads 0 here
        if found is None:
            raise RuntimeError(f"no count in callgrind's dump: {text[-500:]}")
        return int(found.group(1))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def wait_cluster_ok(ports: list[int], limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    for port in ports:
        with redis.Redis(port=port) as node:
            while node.cluster("INFO")["cluster_state"] != "ok":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node {port}: cluster not ok after {limit_s} s")
                time.sleep(0.1)


@contextlib.contextmanager
def _callgrind() -> Iterator[Callgrind]:
    workdir = Path(tempfile.mkdtemp(prefix="split-write-cg-"))
    server = Callgrind(workdir)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def _instructions(
    server: Callgrind, a: argparse.Namespace, cells: list[int], split: bool
) -> Any:
    """Instructions per fix of the driver part and of the region part, each counted in a
    pass of its own of --fixes fixes (the same draws every run of the bench)."""
    from dispatch.adapters.redis_client import connect
    from geoindex import RedisGeoIndex

    index = RedisGeoIndex(connect(server.url, cluster=True, timeout_s=600), ttl_ms=3_600_000)
    counting: list[str] = [""]
    shape = {"regions": 0, "changes": 0}
    inner = index._scripts.run

    async def run(calls: Any) -> list[Any]:
        name = calls[0][0].name if calls else ""
        if name != counting[0]:
            return await inner(calls)
        server.instrument(True)
        try:
            return await inner(calls)
        finally:
            server.instrument(False)
            if name == "region_apply":
                for _, _, args in calls:
                    at = 1
                    while at < len(args):
                        shape["regions"] += 1
                        shape["changes"] += int(args[at + 1])
                        at += 2 + 5 * int(args[at + 1])

    try:
        if split:
            for cell in cells:
                await index.split_region(h3.int_to_str(cell), a.split_res, settle_s=0.0)
        index._scripts.run = run  # type: ignore[method-assign]
        rng = random.Random(8 if split else 7)
        await write_fixes(index, a, [20 * a.batch], 300.0, rng, cells)  # warm-up, not counted
        out: dict[str, Any] = {}
        for move in a.moves:
            counts = {}
            for part in ("driver_upsert", "region_apply"):
                shape.update(regions=0, changes=0)
                server.take()
                counting[0] = part
                await write_fixes(index, a, [a.fixes], move, rng, cells)
                counting[0] = ""
                counts[part] = server.take()
            n = a.fixes
            out[writes_name(move)] = {
                "fixes": n,
                "driver_instructions_per_fix": round(counts["driver_upsert"] / n),
                "region_instructions_per_fix": round(counts["region_apply"] / n),
                "regions_written_per_fix": round(shape["regions"] / n, 3),
                "region_changes_per_fix": round(shape["changes"] / n, 3),
                "region_instructions_per_region": round(counts["region_apply"] / shape["regions"]),
            }
            print(f"{'split' if split else 'unsplit'} {writes_name(move)}: "
                  f"{out[writes_name(move)]}", file=sys.stderr, flush=True)  # fmt: skip
        return out
    finally:
        await index.close()


async def write_fixes(
    index: Any,
    a: argparse.Namespace,
    left: list[int],
    move: float,
    rng: random.Random,
    cells: list[int],
) -> None:
    """Batches until `left[0]` fixes are sent (shared by the writers)."""
    from geoindex import Position

    city = frozenset(cells)
    while left[0] > 0:
        now = int(time.time() * 1000)
        batch = []
        for d in rng.sample(range(a.drivers), a.batch):
            at = near_point(rng, a.home[d], move, city) if move else cell_point(rng, cells)
            batch.append(Position(f"{PREFIX}{d}", *at, now))
        left[0] -= len(batch)
        await index.upsert(batch)


def seed_city(url: str, a: argparse.Namespace, hexcells: str) -> None:
    seed = [sys.executable, "-m", "loadtest.bench.scaleout_load", "seed-index"]
    seed += ["--url", url, "--drivers", str(a.drivers), "--prefix", PREFIX, "--cells", hexcells]
    done = subprocess.run(seed, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"seeding failed: {done.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench.split_write_cost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--drivers", type=int, default=100_000)
    p.add_argument("--cells", default="", help="res-5 cells, hex, comma-separated")
    p.add_argument("--split-res", type=int, default=7, choices=[6, 7])
    p.add_argument("--fixes", type=int, default=10_000, help="per layout and movement")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--writers", type=int, default=1, help="concurrent batches on one index")
    p.add_argument("--moves", default="300,0", help="as hot_split's --moves")
    p.add_argument("--instructions", action="store_true", help="count instructions instead")
    a = p.parse_args(argv)
    cells = [int(c, 16) for c in a.cells.split(",")] if a.cells else DEFAULT_CELLS
    a.moves = [float(m) for m in a.moves.split(",")]
    hexcells = ",".join(f"{c:x}" for c in cells)
    a.home = homes(argparse.Namespace(cells=hexcells, drivers=a.drivers))
    result: dict[str, Any] = {"bench": "split_write_cost", "drivers": a.drivers,
                              "batch": a.batch, "writers": a.writers,
                              "split_res": a.split_res}  # fmt: skip
    if a.instructions:
        with _callgrind() as server:
            seed_city(server.url, a, hexcells)
            result["unsplit"] = asyncio.run(_instructions(server, a, cells, split=False))
            result["split"] = asyncio.run(_instructions(server, a, cells, split=True))
        # Unsplit, the hot master writes every region and a third of the drivers; split,
        # each master a third of both.
        result["predicted_ratio"] = {
            w: round(
                (3 * u["region_instructions_per_fix"] + u["driver_instructions_per_fix"])
                / (s["region_instructions_per_fix"] + s["driver_instructions_per_fix"]),
                3,
            )
            for w, u in result["unsplit"].items()
            for s in [result["split"][w]]
        }
        result["machine"] = machine()
        print(json.dumps(result, indent=1))
        return 0
    with RedisCluster(nodes=3, replicas=0, tie_to_parent=True) as cluster:
        a.ports = [n.port for n in cluster.nodes]
        seed_city(cluster.url, a, hexcells)
        unsplit = asyncio.run(_measure(cluster.url, a, cells, split=False))
        split = asyncio.run(_measure(cluster.url, a, cells, split=True))
    result["unsplit"], result["split"] = unsplit, split
    result["predicted_ratio"] = {
        w: round(unsplit[w]["busiest_master_us_per_fix"] / split[w]["busiest_master_us_per_fix"], 2)
        for w in unsplit
    }
    result["machine"] = machine()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
