"""Location updates per second over WebSocket frames, against one HTTP request per update.

    python -m loadtest.bench.ws_vs_http [--seconds 10] [--connections 64] [--rounds 3]
        [--burst 10] [--sides http,ws,ws_window8,ws_burst]
    python -m loadtest.bench.ws_vs_http --connections 1000 --sides ws --rounds 1 \
        --profile /tmp/ws.prof     # then: python -m pstats /tmp/ws.prof
    python -m loadtest.bench.ws_vs_http --connections 1000 --sides ws --redis-py

One instance on a standalone Redis; both sides are driven by the same asyncio load generator
(loadtest/bench/loadgen.py) in its own process with the same number of connections, each
with one update in flight (the WebSocket side also once with 8 in flight per socket, and
once with one `locations` frame of --burst buffered fixes in flight). The per-driver rate
limit is raised for the run: here one socket is one driver sending as fast as acks come
back, far above what a phone does. The WebSocket sides are measured once every socket is
open (handshakes and subscriptions are not updates; the HTTP side keeps its connections).
Targets: ratio >= 3, and <= 0.12 ms of the instance's CPU (from /proc) per fix with one
frame in flight.

With --redis-py every side also runs, in the same rounds, on a second instance on the same
Redis that sends everything through redis-py (GEOINDEX_REDIS_PIPELINED=0, see
geoindex/redis_pipeline.py): the sides named `<side>_redis_py`.

With --profile the instance runs under cProfile (loadtest/bench/profiled.py), switched on
for the steady part of the WebSocket sides of the last round only; its CPU figures then
include cProfile's.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from itertools import product
from typing import Any

from loadtest.bench.harness import Servers, loadgen, machine, measured, median
from loadtest.bench.profiled import switch
from loadtest.redis_procs import RedisServer

TARGET = 3.0
TARGET_CPU_MS_PER_FIX = 0.12
Hook = Callable[[signal.Signals], None]  # called as the steady part starts and ends
UNLIMITED = {"DISPATCH_DRIVER_RATE_PER_S": "1000000", "DISPATCH_DRIVER_RATE_BURST": "1000000"}


def _steady(
    url: str, secret: str, pids: dict[str, int], port: int, *args: str, hook: Hook | None = None
) -> dict[str, Any]:
    """The WebSocket load, measured over its steady part only: from when every socket is
    open (the load generator says so on stdout) to the end of the timed part."""
    cmd = [sys.executable, "-m", "loadtest.bench.loadgen", "ws-location", "--url", url]
    proc = subprocess.Popen(
        [*cmd, f"--secret={secret}", *args], stdout=subprocess.PIPE, text=True
    )  # fmt: skip
    assert proc.stdout is not None
    lines = iter(proc.stdout.readline, "")
    for line in lines:
        if '"steady"' in line:
            break
    if hook:
        hook(signal.SIGUSR1)
    with measured(pids, [port]) as m:
        for line in lines:
            if '"end"' in line:
                break
    if hook:
        hook(signal.SIGUSR2)
    out = proc.stdout.read()
    if proc.wait(timeout=120) != 0:
        raise RuntimeError("loadgen ws-location failed")
    return {**json.loads(out.strip().splitlines()[-1]), "measured": m}


def _side(
    servers: Servers,
    url: str,
    pids: dict[str, int],
    port: int,
    mode: str,
    *args: str,
    hook: Hook | None = None,
) -> dict[str, Any]:
    if mode == "ws-location":
        r = _steady(url, servers.secret, pids, port, *args, hook=hook)
        m = r.pop("measured")
    else:
        with measured(pids, [port]) as m:
            r = loadgen(mode, url, servers.secret, *args)
    fixes = int(args[args.index("--fixes") + 1]) if "--fixes" in args else 1
    r["fixes_per_frame"] = fixes
    r["per_s"] = r["per_s"] * fixes  # fixes, not frames
    n = max(r["count"] * fixes, 1)
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
    p.add_argument("--burst", type=int, default=10, help="fixes per `locations` frame")
    p.add_argument("--sides", default="http,ws,ws_window8,ws_burst")
    p.add_argument("--profile", metavar="PATH", help="cProfile the WebSocket sides into PATH")
    p.add_argument("--redis-py", action="store_true", help="each side also through redis-py")
    a = p.parse_args(argv)
    c, s = str(a.connections), str(a.seconds)
    every = {
        "http": ("http-location", "-c", c, "--drivers", "2000"),
        "ws": ("ws-location", "-c", c, "--window", "1"),
        "ws_window8": ("ws-location", "-c", c, "--window", "8"),
        "ws_burst": ("ws-location", "-c", c, "--window", "1", "--fixes", str(a.burst)),
    }
    sides = {k: every[k] for k in a.sides.split(",")}
    instances = ["bench-ws", "bench-ws-redis-py"] if a.redis_py else ["bench-ws"]
    names = {(k, n): k if n == "bench-ws" else f"{k}_redis_py" for k in sides for n in instances}
    rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in names.values()}
    with RedisServer(tie_to_parent=True) as redis, Servers() as servers:
        backend = {"DISPATCH_REDIS_URL": redis.url}
        inst = servers.dispatch("bench-ws", backend, UNLIMITED, profile=a.profile)
        off = {**UNLIMITED, "GEOINDEX_REDIS_PIPELINED": "0"}
        insts = {"bench-ws": inst}
        if a.redis_py:
            insts["bench-ws-redis-py"] = servers.dispatch("bench-ws-redis-py", backend, off)
        assert redis.node.proc
        port = redis.node.port
        for i, (side, (mode, *args)), n in product(range(a.rounds), sides.items(), instances):
            profiled = bool(a.profile) and i == a.rounds - 1 and mode == "ws-location"
            profiled = profiled and n == "bench-ws"
            name = names[side, n]
            prefix = f"{name}{i}-"  # fresh drivers each round: no stale fixes from the last
            proc = insts[n].proc
            assert proc
            pids = {"server": proc.pid, "redis": redis.node.proc.pid}
            rounds[name].append(
                _side(
                    servers,
                    insts[n].url,
                    pids,
                    port,
                    mode,
                    *args,
                    "--seconds",
                    s,
                    "--prefix",
                    prefix,
                    hook=partial(switch, inst) if profiled else None,
                )
            )
    rate = {k: median([r["per_s"] for r in v]) for k, v in rounds.items()}
    best = {k: max(r["per_s"] for r in v) for k, v in rounds.items()}
    cpu = {k: median([r["server_cpu_ms_per_update"] for r in v]) for k, v in rounds.items()}
    out: dict[str, Any] = {
        "bench": "ws_frames_vs_http_per_update",
        "machine": machine(),
        "load": f"loadgen, {a.connections} connections, {a.seconds}s, {a.rounds} rounds",
        "profile": a.profile,
        "updates_per_s_median": rate,
        "updates_per_s_best": best,
        # CPU per update moves less than throughput when neighbours take the cores.
        "server_cpu_ms_per_fix_median": cpu,
    }
    if "ws" in cpu:
        out["target_cpu_ms_per_fix"] = TARGET_CPU_MS_PER_FIX
        out["cpu_met"] = cpu["ws"] <= TARGET_CPU_MS_PER_FIX
    for k in sides if a.redis_py else ():
        out[f"cpu_ratio_{k}_to_redis_py"] = round(cpu[k] / cpu[f"{k}_redis_py"], 3)
    if "http" in rate:
        for k in sides.keys() - {"http"}:
            out[f"ratio_{k}_to_http"] = round(rate[k] / rate["http"], 2)
            out[f"cpu_ratio_http_to_{k}"] = round(cpu["http"] / cpu[k], 2)
        if "ws" in rate:
            out["ratio_of_bests_ws_to_http"] = round(best["ws"] / best["http"], 2)
            out["target"] = TARGET
            out["met"] = rate["ws"] / rate["http"] >= TARGET
    out["rounds"] = rounds
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
