"""Location updates per second over HTTP through one instance, against the HTTP ceiling.

    python -m loadtest.bench.http_vs_ceiling [--seconds 10] [--connections 64] [--rounds 3]
    python -m loadtest.bench.http_vs_ceiling --rounds 1 --profile /tmp/http.prof
        # then: python -m pstats /tmp/http.prof
    python -m loadtest.bench.http_vs_ceiling --redis-py

The ceiling is a trivial aiohttp + uvloop handler on the same route (loadtest/bench/ceiling.py).
Both are driven by the same wrk with the same script, connections and duration, in alternating
rounds; the ratio is of the medians. The instance runs on a standalone Redis (and, for the
record, on the embedded backend). Target: ratio >= 0.6. With --profile the instance on Redis
runs under cProfile (loadtest/bench/profiled.py), switched on for its last round only (its
CPU figures then include cProfile's). With --redis-py a fourth side, `service_redis_py`, is
the same instance on the same Redis sending everything through redis-py
(GEOINDEX_REDIS_PIPELINED=0, see geoindex/redis_pipeline.py), in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path
from typing import Any

from loadtest.bench import wrk
from loadtest.bench.harness import Servers, machine, measured, median
from loadtest.bench.profiled import switch
from loadtest.redis_procs import RedisServer

TARGET = 0.6


def _round(
    url: str, pids: dict[str, int], script: Path, a: argparse.Namespace, redis: list[int]
) -> dict[str, Any]:
    with measured(pids, redis) as m:
        r = wrk.run(url, script, a.seconds, a.connections)
    updates = max(r["requests"], 1)
    for name, cpu in m["cpu_s"].items():
        r[f"{name}_cpu_ms_per_update"] = round(cpu * 1e3 / updates, 4)
        r[f"{name}_cpu_util"] = round(cpu / m["wall_s"], 2)
    if redis:
        r["redis_calls_per_update"] = {
            k: round(v / updates, 3) for k, v in m["redis_calls"].items()
        }
    return r


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.http_vs_ceiling")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--drivers", type=int, default=2000)
    p.add_argument("--profile", metavar="PATH", help="cProfile the instance on Redis into PATH")
    p.add_argument("--redis-py", action="store_true", help="add the instance through redis-py")
    a = p.parse_args(argv)
    with RedisServer(tie_to_parent=True) as redis, Servers() as servers:
        script = servers.location_script("h", a.drivers)
        ceiling_url, ceiling_pid = servers.ceiling()
        svc = servers.dispatch("bench-redis", {"DISPATCH_REDIS_URL": redis.url}, profile=a.profile)
        emb = servers.dispatch("bench-embedded", {})
        assert svc.proc and emb.proc
        assert redis.node.proc
        redis_pids = {"server": svc.proc.pid, "redis": redis.node.proc.pid}
        targets: dict[str, tuple[str, dict[str, int], list[int]]] = {
            "ceiling": (ceiling_url, {"server": ceiling_pid}, []),
            "service_redis": (svc.url, redis_pids, [redis.node.port]),
            "service_embedded": (emb.url, {"server": emb.proc.pid}, []),
        }
        if a.redis_py:
            off = {"DISPATCH_REDIS_URL": redis.url, "GEOINDEX_REDIS_PIPELINED": "0"}
            slow = servers.dispatch("bench-redis-py", off)
            assert slow.proc
            pids = {"server": slow.proc.pid, "redis": redis.node.proc.pid}
            targets["service_redis_py"] = (slow.url, pids, [redis.node.port])
        for url, _pid, _r in targets.values():  # warm-up: connections, scripts, caches
            wrk.run(url, script, 2, a.connections)
        rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in targets}
        for i in range(a.rounds):  # alternating, so a noisy neighbour hits all sides alike
            for name, (url, pids, rports) in targets.items():
                profiled = bool(a.profile) and name == "service_redis" and i == a.rounds - 1
                if profiled:
                    switch(svc, signal.SIGUSR1)
                rounds[name].append(_round(url, pids, script, a, rports))
                if profiled:
                    switch(svc, signal.SIGUSR2)
    rps = {k: median([r["rps"] for r in v]) for k, v in rounds.items()}
    best = {k: max(r["rps"] for r in v) for k, v in rounds.items()}
    ratio = rps["service_redis"] / rps["ceiling"]
    cpu = {k: median([r["server_cpu_ms_per_update"] for r in v]) for k, v in rounds.items()}
    print(json.dumps({
        "bench": "http_location_updates_vs_ceiling",
        "machine": machine(),
        "load": f"wrk -t1 -c{a.connections} -d{a.seconds}s, {a.drivers} drivers, {a.rounds} rounds",
        "updates_per_s_median": rps,
        "updates_per_s_best": best,
        "ratio_service_redis_to_ceiling": round(ratio, 3),
        "ratio_of_bests": round(best["service_redis"] / best["ceiling"], 3),
        "ratio_service_embedded_to_ceiling": round(rps["service_embedded"] / rps["ceiling"], 3),
        # CPU per update moves less than throughput when neighbours take the cores.
        "server_cpu_ms_per_update_median": cpu,
        "cpu_ratio_ceiling_to_service_redis": round(cpu["ceiling"] / cpu["service_redis"], 3),
        **(_against_redis_py(rps, cpu) if a.redis_py else {}),
        "profile": a.profile,
        "target": TARGET,
        "met": ratio >= TARGET,
        "rounds": rounds,
    }, indent=1))  # fmt: skip


def _against_redis_py(rps: dict[str, float], cpu: dict[str, float]) -> dict[str, float]:
    slow, fast = "service_redis_py", "service_redis"
    return {
        "ratio_service_redis_py_to_ceiling": round(rps[slow] / rps["ceiling"], 3),
        "cpu_ratio_service_redis_to_redis_py": round(cpu[fast] / cpu[slow], 3),
    }


if __name__ == "__main__":
    main()
