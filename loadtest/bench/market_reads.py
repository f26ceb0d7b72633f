"""Benchmark: market reads (GET /v1/market) p99, alone and at the rides benchmark's load.

    python -m loadtest.bench.market_reads [--drivers 20000] [--rides 10] [--reads 5]

One instance on a Redis Cluster (3 masters + 3 replicas), drivers seeded through the fleet
batch endpoint (TTL raised so they stay online). Market reads of a 2 km area at the city
centre (about 80 market cells) run open loop at --reads per second, first alone, then
beside ride requests at --rides per second (the rate the rides benchmark meets its p99 at)
and --background fleet updates per second; every read is timed from when it was due.
Target: p99 ≤ 5 ms with the load. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from loadtest.bench.harness import Servers, loadgen, machine
from loadtest.redis_procs import RedisCluster

TARGET_P99_MS = 5.0


def _spawn(mode: str, url: str, secret: str, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "loadtest.bench.loadgen", mode, "--url", url, "--secret", secret]
    return subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    return dict(json.loads(out.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.market_reads")
    p.add_argument("--drivers", type=int, default=20_000)
    p.add_argument("--rides", type=float, default=10.0, help="ride requests/s")
    p.add_argument("--reads", type=float, default=5.0, help="market reads/s")
    p.add_argument("--background", type=int, default=2000, help="fleet updates/s")
    p.add_argument("--seconds", type=float, default=15.0)
    a = p.parse_args(argv)
    with RedisCluster(tie_to_parent=True) as cluster, Servers() as servers:
        inst = servers.dispatch(
            "bench-market", {"DISPATCH_REDIS_CLUSTER_URL": cluster.url},
            {"DISPATCH_DRIVER_TTL_S": "3600", "DISPATCH_OFFER_TIMEOUT_S": "600"},
        )  # fmt: skip
        secret, url = servers.secret, inst.url
        loadgen("seed", url, secret, "--drivers", str(a.drivers), "--batch", "1000", "-c", "4",
                "--prefix", "s")  # fmt: skip
        seconds = str(a.seconds)
        alone = loadgen("market", url, secret, "--rate", str(a.reads), "--seconds", seconds,
                        "--prefix", "alone", "-c", "16")  # fmt: skip
        bg = _spawn("fleet", url, secret, "--rate", str(a.background), "--batch", "500",
                    "--drivers", str(a.drivers), "--prefix", "s", "--seconds",
                    str(a.seconds + 2), "-c", "8")  # fmt: skip
        rides = _spawn("rides", url, secret, "--rate", str(a.rides), "--seconds", seconds,
                       "--prefix", "m-", "-c", "256")  # fmt: skip
        time.sleep(1.0)  # the load is running before the first read
        loaded = loadgen("market", url, secret, "--rate", str(a.reads), "--seconds", seconds,
                         "--prefix", "loaded", "-c", "16")  # fmt: skip
        ride_result = _result(rides, a.seconds + 120)
        background = _result(bg, a.seconds + 120)
    print(json.dumps({
        "bench": "market_reads",
        "machine": machine(),
        "drivers": a.drivers,
        "reads_alone": alone,
        "reads_loaded": loaded,
        "rides_beside": ride_result,
        "background_batches": background,
        "target_p99_ms": TARGET_P99_MS,
        "met": loaded["p99_ms"] <= TARGET_P99_MS,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
