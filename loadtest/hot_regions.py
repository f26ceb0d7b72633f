"""Which regions to split: `python -m loadtest.hot_regions --url redis://HOST:PORT`.

Samples a Redis or Redis Cluster holding a geo index for `--seconds` and prints JSON (and a
table with --table): per region its res-5 cell, slot, node, drivers, writes/s, searches/s
and estimated share of Redis CPU, then the regions proposed for a finer resolution. The
maths and the split rule are in loadtest/hot_regions_rank.py.

What it reads, and why:
- CPU: `INFO cpu` (the main thread's CPU seconds) on every master before and after: the
  one core that runs a master's commands. `INFO commandstats` before and after gives the
  busiest commands per node (calls/s and time); not the total, as a script's commands
  count both under their own names and inside its EVALSHA (see hot_regions_rank.py).
- Regions: the index's `gi:regions` set; slot = CLUSTER KEYSLOT of `gi:{r<cell>}:geo`, the
  node its owner in CLUSTER SLOTS.
- Writes/s: the index keeps no per-region counter (its `seen` set is written when a
  driver enters a region, not on each fix: region_apply.lua), so each region gets the
  cluster's fix rate (HMSET calls over all masters in `INFO commandstats`: one a fix,
  driver_upsert.lua's write of the driver's key, the index's only HMSET) in proportion
  to its drivers: exact while every driver sends as often as every other (the service's
  drivers send one fix every 4 s).
- Searches/s: the index records no read per region (`redis-cli --hotkeys` needs an LFU
  maxmemory-policy, which the service does not set, and gives a saturating logarithmic
  counter, not a rate). The service's market counts every ride request (offered or no
  driver) per pickup cell and product in `mk:{r<cell>}:b:<bucket>:<product>` (`<cell>|n`
  fields, buckets of `--market-bucket-s`, the service's DISPATCH_MARKET_BUCKET_S; products
  of `--products`, the service's catalog); each runs a k-nearest search
  in that region, so their delta over the interval is the searches/s, a lower bound
  (quotes, batched re-matching and retries after a decline search too). Where no region
  has a bucket (the market not in use) searches/s is null and the CPU split uses writes.
- Drivers: ZCARD of the `seen` set (every driver with a position in the region); the child
  cells of a proposed region are counted with ZCOUNT over their score range of `geo`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import h3
import orjson
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from dispatch.adapters.redis_market import region_tag
from dispatch.domain.products import DEFAULT_CATALOG
from geoindex.cells import score_range
from loadtest.hot_regions_rank import (
    FINER_RES,
    Node,
    Region,
    Row,
    command_rates,
    cpu_cores,
    is_proposed,
    rank,
    suggest,
)

# The sampler's own commands, left out of the command breakdown.
OWN = ("cmdstat_info",)

RULE = (
    "propose a region when its node's main thread uses >= cpu_threshold cores and the region "
    "carries >= min_share of the node's region load (writes/s + 3 x searches/s); suggest the "
    "coarsest of res 6 and 7 whose busiest child (by drivers) would take <= min_share * "
    "cpu_threshold cores"
)


class Sampler:
    """One connection per master for INFO, one (cluster) client for the region keys."""

    def __init__(self, url: str, prefix: str = "gi") -> None:
        self.url = url
        self.prefix = prefix
        self.keys: Any = None
        self.nodes: dict[str, Any] = {}
        self.slots: list[tuple[int, int, str]] = []

    async def open(self) -> None:
        first: Any = aredis.Redis.from_url(self.url)
        self.keys = first  # closed by close() whatever happens next
        info = await first.info("cluster")
        if not info.get("cluster_enabled"):
            name = _name(first)
            self.nodes, self.slots = {name: first}, [(0, 16383, name)]
            return
        for start, end, owner, *_ in await first.execute_command("CLUSTER SLOTS"):
            self.slots.append((int(start), int(end), f"{_s(owner[0])}:{int(owner[1])}"))
        self.keys = None
        await first.aclose()
        self.keys = RedisCluster.from_url(self.url)
        await self.keys.initialize()
        for node in self.keys.get_primaries():
            self.nodes[node.name] = aredis.Redis.from_url(_at(self.url, node.host, node.port))

    async def close(self) -> None:
        for client in {id(c): c for c in [self.keys, *self.nodes.values()] if c}.values():
            await client.aclose()

    def tag(self, cell: str) -> str:
        return f"{self.prefix}:{{r{cell}}}"

    def owner(self, slot: int) -> str:
        return next(name for start, end, name in self.slots if start <= slot <= end)

    async def snapshot(self) -> dict[str, tuple[float, dict[str, tuple[int, int]]]]:
        """Per node: main-thread CPU seconds, and commandstats {command: (calls, usec)}."""
        names = list(self.nodes)
        replies = await asyncio.gather(*(_cpu_and_commands(self.nodes[n]) for n in names))
        return dict(zip(names, replies, strict=True))

    async def regions(self) -> list[str]:
        members = await self.keys.smembers(f"{self.prefix}:regions")
        return sorted(_s(m) for m in members)

    async def ride_requests(
        self, cells: Sequence[str], buckets: range, products: Sequence[str]
    ) -> list[dict[int, int]]:
        """Per region, {bucket: ride requests counted in it, every product's} for the
        buckets that exist."""
        pipe = self.keys.pipeline(transaction=False)
        for c in cells:
            for b in buckets:
                for p in products:
                    pipe.hgetall(f"{region_tag(int(c, 16))}:b:{b}:{p}")
        replies = iter(await pipe.execute())
        out = []
        for _ in cells:
            counts = {}
            for b in buckets:
                found = [fields for _ in products if (fields := next(replies))]
                if found:
                    counts[b] = sum(
                        int(v) for f in found for k, v in f.items() if _s(k).endswith("|n")
                    )
            out.append(counts)
        return out

    async def drivers(self, cells: Sequence[str]) -> list[int]:
        pipe = self.keys.pipeline(transaction=False)
        for c in cells:
            pipe.zcard(f"{self.tag(c)}:seen")
        return [int(n) for n in await pipe.execute()]

    async def child_counts(self, cell: str) -> dict[int, list[int]]:
        """Available drivers per child cell at res 6 and 7 (one ZCOUNT per child); a
        region already split at res 6 has only its res-7 children, one at res 7 none."""
        finer = [res for res in FINER_RES if res > h3.get_resolution(cell)]
        children = {res: sorted(h3.cell_to_children(cell, res)) for res in finer}
        pipe = self.keys.pipeline(transaction=False)
        for cells in children.values():
            for child in cells:
                pipe.zcount(f"{self.tag(cell)}:geo", *score_range(h3.str_to_int(child)))
        counts = [int(n) for n in await pipe.execute()]
        out, i = {}, 0
        for res, cells in children.items():
            out[res], i = counts[i : i + len(cells)], i + len(cells)
        return out


async def sample(
    url: str,
    seconds: float,
    *,
    cpu_threshold: float = 0.5,
    min_share: float = 0.25,
    prefix: str = "gi",
    top: int = 20,
    market_bucket_s: float = 5.0,
    products: Sequence[str] = tuple(DEFAULT_CATALOG.products),
) -> dict[str, Any]:
    if (
        not seconds > 0
        or not 0 <= min_share <= 1
        or cpu_threshold < 0
        or top < 1
        or not market_bucket_s > 0
    ):
        raise ValueError(
            "need seconds > 0, 0 <= min_share <= 1, cpu_threshold >= 0, top >= 1, "
            "market_bucket_s > 0"
        )
    s = Sampler(url, prefix)
    try:
        await s.open()
        cells = await s.regions()
        for c in cells:  # the set is written by the index, but say so if it is not H3
            if not h3.is_valid_cell(c):
                raise ValueError(f"{prefix}:regions holds {c!r}, not an H3 cell")
        # Buckets by wall clock, as the service numbers them; one either side for clocks
        # up to a bucket apart.
        bucket_ms = round(market_bucket_s * 1000)
        first = int(time.time() * 1000) // bucket_ms - 1
        asked0 = await s.ride_requests(cells, range(first, first + 3), products)
        before, t0 = await s.snapshot(), time.monotonic()
        await asyncio.sleep(seconds)
        after, t1 = await s.snapshot(), time.monotonic()
        asked1 = await s.ride_requests(
            cells, range(first, int(time.time() * 1000) // bucket_ms + 2), products
        )
        drivers = await s.drivers(cells)
        interval = t1 - t0
        nodes = {}
        for name, (cpu1, stats1) in after.items():
            cpu0, stats0 = before.get(name, (0.0, {}))
            cpu = cpu_cores(cpu0, cpu1, interval)
            nodes[name] = Node(name, cpu, command_rates(stats0, stats1, interval))
        counted = any(asked1)
        fixes = sum(n.commands.get("hmset", (0.0, 0.0))[0] for n in nodes.values())
        per_driver = fixes / max(sum(drivers), 1)
        regions = []
        for c, d, a0, a1 in zip(cells, drivers, asked0, asked1, strict=True):
            slot = key_slot(f"{s.tag(c)}:geo".encode())
            # Per bucket: one that expires during a long interval drops out, not negative.
            asks = sum(n - a0.get(b, 0) for b, n in a1.items())
            searches = asks / interval if counted else None
            regions.append(Region(c, slot, s.owner(slot), d, d * per_driver, searches))
        rows = rank(regions, nodes)
        for row in rows:
            if is_proposed(row, cpu_threshold, min_share):
                counts = await s.child_counts(row.region.cell)
                suggest(row, counts, cpu_threshold, min_share)
        return report(rows, nodes, interval, cpu_threshold, min_share, top)
    finally:
        await s.close()


def report(
    rows: list[Row],
    nodes: dict[str, Node],
    interval: float,
    cpu_threshold: float,
    min_share: float,
    top: int,
) -> dict[str, Any]:
    def busiest(n: Node) -> dict[str, dict[str, float]]:
        by_time = sorted(n.commands.items(), key=lambda kv: -kv[1][1])[:5]
        return {k: {"calls_per_s": round(c, 1), "cores": round(t, 4)} for k, (c, t) in by_time}

    return {
        "interval_s": round(interval, 3),
        "nodes": [
            {
                "node": n.name,
                "cpu_cores": round(n.cpu, 4),
                "regions": sum(1 for r in rows if r.region.node == n.name),
                # commandstats: a script's commands also count inside its evalsha time
                "busiest_commands": busiest(n),
            }
            for n in sorted(nodes.values(), key=lambda n: -n.cpu)
        ],
        "regions": [_row(r) for r in rows[:top]],
        "regions_total": len(rows),
        "proposal": {
            "rule": RULE,
            "cpu_threshold": cpu_threshold,
            "min_share": min_share,
            "split": [
                {"cell": r.region.cell, "res": r.suggested_res, "still_hot": r.still_hot}
                for r in rows
                if r.proposed
            ],
        },
    }


def _row(r: Row) -> dict[str, Any]:
    searches = r.region.searches_per_s
    out = {
        "cell": r.region.cell,
        "slot": r.region.slot,
        "node": r.region.node,
        "drivers": r.region.drivers,
        "writes_per_s": round(r.region.writes_per_s, 1),
        "searches_per_s": None if searches is None else round(searches, 2),
        "share_of_node": round(r.share_of_node, 4),
        "cpu_cores": round(r.cpu, 4),
        "proposed": r.proposed,
    }
    if r.proposed:
        out["busiest_child_fraction"] = {
            str(k): round(v, 3) for k, v in r.busiest_child_fraction.items()
        }
    return out


def table(result: dict[str, Any]) -> str:
    head = (
        f"{'cell':<16} {'slot':>5} {'node':<21} {'drivers':>8} {'writes/s':>9} "
        f"{'searches/s':>10} {'share':>6} {'cores':>6}  split"
    )
    lines = [head]
    split = {p["cell"]: p for p in result["proposal"]["split"]}
    for r in result["regions"]:
        s = r["searches_per_s"]
        p = split.get(r["cell"])
        mark = f"res {p['res']}{' (still hot)' if p['still_hot'] else ''}" if p else ""
        lines.append(
            f"{r['cell']:<16} {r['slot']:>5} {r['node']:<21} {r['drivers']:>8} "
            f"{r['writes_per_s']:>9.1f} {'-' if s is None else f'{s:.1f}':>10} "
            f"{r['share_of_node']:>6.0%} {r['cpu_cores']:>6.3f}  {mark}"
        )
    return "\n".join(lines)


async def _cpu_and_commands(node: Any) -> tuple[float, dict[str, tuple[int, int]]]:
    pipe = node.pipeline(transaction=False)
    pipe.info("cpu")
    pipe.info("commandstats")
    cpu, stats = await pipe.execute()
    # The main thread runs every command; its fields exist from Redis 6.2.
    main = [cpu.get("used_cpu_user_main_thread"), cpu.get("used_cpu_sys_main_thread")]
    if None in main:
        main = [cpu["used_cpu_user"], cpu["used_cpu_sys"]]
    commands = {
        k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for k, v in stats.items()
        if k not in OWN
    }
    return float(sum(main)), commands


def _at(url: str, host: str, port: int) -> str:
    """The same URL (scheme, credentials, options) for another node."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    host = f"[{host}]" if ":" in host else host
    return urlunsplit(parts._replace(netloc=f"{user}@{host}:{port}" if user else f"{host}:{port}"))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _name(client: Any) -> str:
    kw = client.connection_pool.connection_kwargs
    return f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m loadtest.hot_regions", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--url", required=True, help="redis://HOST:PORT of a node (any cluster node)")
    ap.add_argument("--seconds", type=float, default=2.0, help="sampling interval (default 2)")
    ap.add_argument(
        "--market-bucket-s", type=float, default=5.0, help="the service's market bucket (5)"
    )
    ap.add_argument(
        "--products",
        default=",".join(DEFAULT_CATALOG.products),
        help="the service's products, comma-separated (default: the built-in catalog's)",
    )
    ap.add_argument("--cpu-threshold", type=float, default=0.5, help="cores per node (default 0.5)")
    ap.add_argument(
        "--min-share", type=float, default=0.25, help="of the node's load (default 0.25)"
    )
    ap.add_argument("--prefix", default="gi", help="the index's key prefix (default gi)")
    ap.add_argument("--top", type=int, default=20, help="regions listed (default 20)")
    ap.add_argument("--table", action="store_true", help="also print a table to stderr")
    args = ap.parse_args(argv)
    try:
        result = asyncio.run(
            sample(args.url, args.seconds, cpu_threshold=args.cpu_threshold,
                   min_share=args.min_share, prefix=args.prefix, top=args.top,
                   market_bucket_s=args.market_bucket_s, products=args.products.split(","))
        )  # fmt: skip
    except (ValueError, OSError, aredis.RedisError) as exc:
        print(f"hot_regions: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    if args.table:
        print(table(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
