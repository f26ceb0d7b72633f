"""Location updates per second over WebSocket frames, against one HTTP request per update.

    python -m loadtest.bench.ws_vs_http [--seconds 10] [--connections 64] [--rounds 3]

One instance on a standalone Redis; both sides are driven by the same asyncio load generator
(loadtest/bench/loadgen.py) in its own process with the same number of connections, each
with one update in flight (the WebSocket side also once with 8 in flight per socket). The
per-driver rate limit is raised for the run: here one socket is one driver sending as fast
as acks come back, far above what a phone does. Target: ratio >= 3.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from loadtest.bench.harness import Servers, loadgen, machine, measured, median
from loadtest.redis_procs import RedisServer

TARGET = 3.0
UNLIMITED = {"DISPATCH_DRIVER_RATE_PER_S": "1000000", "DISPATCH_DRIVER_RATE_BURST": "1000000"}


def _side(
    servers: Servers, url: str, pids: dict[str, int], port: int, mode: str, *args: str
) -> dict[str, Any]:
    with measured(pids, [port]) as m:
        r = loadgen(mode, url, servers.secret, *args)
    n = max(r["count"], 1)
    for name, cpu in m["cpu_s"].items():
        r[f"{name}_cpu_ms_per_update"] = round(cpu * 1e3 / n, 4)
        r[f"{name}_cpu_util"] = round(cpu / m["wall_s"], 2)
    r["redis_calls_per_update"] = {k: round(v / n, 3) for k, v in m["redis_calls"].items()}
    return r


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.ws_vs_http")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    c, s = str(a.connections), str(a.seconds)
    rounds: dict[str, list[dict[str, Any]]] = {"http": [], "ws": [], "ws_window8": []}
    with RedisServer(tie_to_parent=True) as redis, Servers() as servers:
        inst = servers.dispatch("bench-ws", {"DISPATCH_REDIS_URL": redis.url}, UNLIMITED)
        assert inst.proc
        assert redis.node.proc
        port, pids = redis.node.port, {"server": inst.proc.pid, "redis": redis.node.proc.pid}
        sides = {
            "http": ("http-location", "-c", c, "--drivers", "2000"),
            "ws": ("ws-location", "-c", c, "--window", "1"),
            "ws_window8": ("ws-location", "-c", c, "--window", "8"),
        }
        for i in range(a.rounds):
            for name, (mode, *args) in sides.items():
                prefix = f"{name}{i}-"  # fresh drivers each round: no stale fixes from the last
                rounds[name].append(
                    _side(
                        servers,
                        inst.url,
                        pids,
                        port,
                        mode,
                        *args,
                        "--seconds",
                        s,
                        "--prefix",
                        prefix,
                    )
                )
    rate = {k: median([r["per_s"] for r in v]) for k, v in rounds.items()}
    best = {k: max(r["per_s"] for r in v) for k, v in rounds.items()}
    ratio = rate["ws"] / rate["http"]
    cpu = {k: median([r["server_cpu_ms_per_update"] for r in v]) for k, v in rounds.items()}
    print(json.dumps({
        "bench": "ws_frames_vs_http_per_update",
        "machine": machine(),
        "load": f"loadgen, {a.connections} connections, {a.seconds}s, {a.rounds} rounds",
        "updates_per_s_median": rate,
        "updates_per_s_best": best,
        "ratio_of_bests_ws_to_http": round(best["ws"] / best["http"], 2),
        "ratio_ws_to_http": round(ratio, 2),
        # CPU per update moves less than throughput when neighbours take the cores.
        "server_cpu_ms_per_update_median": cpu,
        "cpu_ratio_http_to_ws": round(cpu["http"] / cpu["ws"], 2),
        "ratio_ws_window8_to_http": round(rate["ws_window8"] / rate["http"], 2),
        "target": TARGET,
        "met": ratio >= TARGET,
        "rounds": rounds,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
