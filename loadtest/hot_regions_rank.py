"""The ranking maths of `python -m loadtest.hot_regions`: no I/O, so it is unit-tested alone.

Redis reports CPU per node, not per key. A node's CPU over the sampling interval (its main
thread's, from INFO cpu: the one core a master has for commands) is therefore split over
the regions that node owns in proportion to their load weight: writes/s, plus searches/s
times SEARCH_COST when searches are counted (the index keeps no per-region search counter;
the service's market counters give its ride requests per region, each a search; without
them searches are None and the weight is the writes alone). The driver keys
(`gi:d:{<driver>}`) and ride keys hash by id and spread evenly over the nodes; their CPU is
split with the rest, which raises every region of a node by the same factor: the ranking
inside a node is unchanged.

INFO commandstats gives the breakdown by command, but not the total: a command run inside
a script is counted under its own name and again inside the EVALSHA's time (measured: a
script of 2,000 ZADDs run 50 times showed 277 ms under evalsha and 63 ms under zadd), and
its usec is wall time, which a loaded machine inflates.

Split rule: a region is proposed when its node uses at least `cpu_threshold` of a core and
the region carries at least `min_share` of that node's region load. The suggested
resolution is the coarsest of 6 and 7 at which the busiest child cell (by the region's
drivers, the best proxy for where its writes and searches land) would carry at most
`min_share * cpu_threshold` of a core: a child that would not itself meet the rule on a
node that busy. If even res 7 leaves a child above it, res 7 is suggested with `still_hot`
set: that child needs a master of its own or a finer split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# Redis CPU of a k-nearest search in writes: the index bench in docs/benchmarks.md measured
# 184-237 us a query against 57 us an upsert. An assumption, used when searches are counted.
SEARCH_COST = 3.0
FINER_RES = (6, 7)


@dataclass(frozen=True, slots=True)
class Region:
    cell: str  # res-5 H3 cell, hex
    slot: int
    node: str
    drivers: int
    writes_per_s: float
    searches_per_s: float | None = None

    @property
    def weight(self) -> float:
        return self.writes_per_s + SEARCH_COST * (self.searches_per_s or 0.0)


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    cpu: float  # cores: main-thread CPU seconds over the interval / its length
    commands: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # calls/s, cores


@dataclass(slots=True)
class Row:
    region: Region
    node_cpu: float
    share_of_node: float  # of the node's region weight, 0..1
    cpu: float  # estimated cores: node_cpu * share_of_node
    proposed: bool = False
    suggested_res: int | None = None
    still_hot: bool = False
    busiest_child_fraction: dict[int, float] = field(default_factory=dict)


def cpu_cores(before_s: float, after_s: float, seconds: float) -> float:
    """Cores used between two readings of a CPU-seconds counter."""
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    # A counter that went down is a restarted node: count from 0.
    return (after_s - before_s if after_s >= before_s else after_s) / seconds


def command_rates(
    before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]], seconds: float
) -> dict[str, tuple[float, float]]:
    """{command: (calls/s, cores)} from two commandstats snapshots {command: (calls, usec)}."""
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    out = {}
    for cmd, (c1, u1) in after.items():
        c0, u0 = before.get(cmd, (0, 0))
        # CONFIG RESETSTAT (or a restart) between the snapshots: count from 0.
        calls, usec = (c1 - c0, u1 - u0) if c1 >= c0 else (c1, u1)
        if calls:
            out[cmd] = (calls / seconds, usec / 1e6 / seconds)
    return out


def rank(regions: Sequence[Region], nodes: Mapping[str, Node]) -> list[Row]:
    """Rows busiest first (estimated CPU, then writes/s, then drivers)."""
    totals: dict[str, float] = {}
    for r in regions:
        totals[r.node] = totals.get(r.node, 0.0) + r.weight
    rows = []
    for r in regions:
        total = totals[r.node]
        share = r.weight / total if total > 0 else 0.0
        cpu = nodes[r.node].cpu if r.node in nodes else 0.0
        rows.append(Row(r, cpu, share, cpu * share))
    rows.sort(key=lambda w: (-w.cpu, -w.region.writes_per_s, -w.region.drivers, w.region.cell))
    return rows


def is_proposed(row: Row, cpu_threshold: float, min_share: float) -> bool:
    return row.node_cpu >= cpu_threshold and row.share_of_node >= min_share and row.cpu > 0


def suggest(
    row: Row, child_counts: Mapping[int, Sequence[int]], cpu_threshold: float, min_share: float
) -> None:
    """Fill the row's suggestion from its drivers per child cell at res 6 and 7."""  # fmt: skip
    cap = min_share * cpu_threshold
    row.proposed = True
    for res in FINER_RES:
        counts = child_counts.get(res) or []
        total = sum(counts)
        fraction = max(counts) / total if total else 1.0
        row.busiest_child_fraction[res] = fraction
        if row.suggested_res is None and row.cpu * fraction <= cap:
            row.suggested_res = res
    if row.suggested_res is None:
        row.suggested_res, row.still_hot = FINER_RES[-1], True
