"""Benchmark: market reads (GET /v1/market) p99, alone and at the rides benchmark's load.

    python -m loadtest.bench.market_reads [--drivers 100000] [--rides 10] [--reads 5]
                                          [--background 1000] [--batch 100]
    python -m loadtest.bench.market_reads --profile /tmp/market.prof   # then:
    python -m pstats /tmp/market.prof   # sort tottime / cumtime, stats 30

With --profile the instance runs under cProfile (loadtest/bench/profiled.py) switched on
for the reads alone only (not the seeding, not the loaded run).

One instance on a Redis Cluster (3 masters + 3 replicas), drivers seeded through the fleet
batch endpoint (TTL raised so they stay online). Market reads of a 2 km area at the city
centre (19 market cells) run open loop at --reads per second, first alone, then
beside the rides benchmark's load: the defaults are the run where docs/benchmarks.md
records the rides' p99 target met (`rides --rates 10 --background 1000 --batch 100`:
100,000 drivers, 10 ride requests/s beside 1,000 fleet updates/s in batches of 100).
Every read is timed from when it was due. (Until 2026-11-30 the defaults were 20,000
drivers and 2,000 updates/s in batches of 500: twice the documented background.)
The same reads of /healthz at the same rate, before the market reads alone and beside
them under load, are the baseline: what any read costs on this machine at that moment.
The area's first read on the instance (which waits for the area to be read: nothing is
kept yet) is timed on its own before the reads alone, beside a first /healthz read on a
new connection: the phases' percentiles are an ops map's steady polling.
Redis's share: the masters' CPU (INFO cpu) and command time by command (INFO
commandstats) per market read alone, and per /healthz read (the background jobs' share,
which goes on under both). Target: p99 ≤ 5 ms with the load. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

from loadtest.bench.harness import Servers, cpu_seconds, loadgen, machine
from loadtest.bench.profiled import switch
from loadtest.redis_procs import REDIS_CLI, RedisCluster
from loadtest.scenario.city import City
from loadtest.scenario.tokens import mint

TARGET_P99_MS = 5.0
BASELINE = "/healthz"


def _spawn(mode: str, url: str, secret: str, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "loadtest.bench.loadgen", mode, "--url", url, f"--secret={secret}"]
    return subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    return dict(json.loads(out.strip().splitlines()[-1]))


CPU = "cpu"  # redis_usec's key for the servers' CPU time (usec), beside the commands'


def first_read_ms(url: str, secret: str, path: str | None = None) -> float:
    """One read of the market area (or of `path`) on a new connection, timed: the first
    of an area on an instance reads it before answering (market.AreaSnapshots)."""
    city = City()
    url += path or f"/v1/market?lat={city.lat}&lng={city.lng}&radius_m=2000.0"
    req = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {mint('ops', 'first', secret)}"}
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()
    return round((time.perf_counter() - t0) * 1000, 2)


def redis_usec(ports: list[int]) -> dict[str, tuple[int, int]]:
    """(calls, usec) per command, summed over the given servers (INFO commandstats; a
    script's own commands count both under their name and in its evalsha), and under
    CPU the servers' CPU time (INFO cpu, user + sys)."""
    out: dict[str, tuple[int, int]] = {CPU: (0, 0)}
    for port in ports:
        info = subprocess.run(
            [REDIS_CLI, "-p", str(port), "INFO", "all"], capture_output=True, text=True, timeout=10
        ).stdout
        for line in info.splitlines():
            if line.startswith("cmdstat_"):
                name, rest = line[len("cmdstat_") :].split(":", 1)
                fields = dict(kv.split("=", 1) for kv in rest.split(","))
                calls, usec = out.get(name, (0, 0))
                out[name] = (calls + int(fields["calls"]), usec + int(fields["usec"]))
            elif line.startswith(("used_cpu_sys:", "used_cpu_user:")):
                out[CPU] = (0, out[CPU][1] + round(float(line.split(":")[1]) * 1e6))
    return out


def _per_read(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], reads: int
) -> dict[str, Any]:
    """Redis per read between two redis_usec samples: its CPU (ms), and the command time
    of each command that took any (usec; INFO itself left out)."""
    delta = {
        k: (c - before.get(k, (0, 0))[0], u - before.get(k, (0, 0))[1])
        for k, (c, u) in after.items()
        if k not in ("info", CPU)
    }
    n = max(1, reads)
    return {
        "cpu_ms": round((after[CPU][1] - before[CPU][1]) / n / 1000, 3),
        "usec_by_command": {k: round(u / n, 1) for k, (_, u) in delta.items() if u >= n},
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.market_reads")
    p.add_argument("--drivers", type=int, default=100_000)
    p.add_argument("--rides", type=float, default=10.0, help="ride requests/s")
    p.add_argument("--reads", type=float, default=5.0, help="market reads/s")
    p.add_argument("--background", type=int, default=1000, help="fleet updates/s")
    p.add_argument("--batch", type=int, default=100, help="updates per fleet request")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--profile", metavar="PATH", help="cProfile the reads alone into PATH")
    a = p.parse_args(argv)
    with RedisCluster(tie_to_parent=True) as cluster, Servers() as servers:
        inst = servers.dispatch(
            "bench-market",
            {"DISPATCH_REDIS_CLUSTER_URL": cluster.url},
            {
                "DISPATCH_DRIVER_TTL_S": "3600",  # the seeded drivers stay online
                "DISPATCH_OFFER_TIMEOUT_S": "600",
            },
            profile=a.profile,
        )
        secret, url = servers.secret, inst.url
        loadgen("seed", url, secret, "--drivers", str(a.drivers), "--batch", "1000", "-c", "4",
                "--prefix", "s")  # fmt: skip
        seconds = str(a.seconds)
        reads = ("--rate", str(a.reads), "--seconds", seconds, "-c", "16")
        assert inst.proc is not None
        masters = [n.port for n in cluster.masters()]
        cpu, r0 = cpu_seconds(inst.proc.pid), redis_usec(masters)
        floor_alone = loadgen("market", url, secret, *reads, "--path", BASELINE)
        floor_cpu = cpu_seconds(inst.proc.pid) - cpu
        r1_floor = redis_usec(masters)
        # The area's first read (nothing kept yet: read before answering), timed apart
        # from the phase's steady reads, beside a /healthz read timed the same way.
        first = {
            "market": first_read_ms(url, secret),
            "baseline": first_read_ms(url, secret, BASELINE),
        }
        if a.profile:
            switch(inst, signal.SIGUSR1, 0.5)
        cpu, r1 = cpu_seconds(inst.proc.pid), redis_usec(masters)
        alone = loadgen("market", url, secret, *reads, "--prefix", "alone")
        market_cpu = cpu_seconds(inst.proc.pid) - cpu
        r2 = redis_usec(masters)
        redis_floor = _per_read(r0, r1_floor, floor_alone["count"])
        redis_market = _per_read(r1, r2, alone["count"])
        if a.profile:
            switch(inst, signal.SIGUSR2, 0.5)
        bg = _spawn("fleet", url, secret, "--rate", str(a.background), "--batch", str(a.batch),
                    "--drivers", str(a.drivers), "--prefix", "s", "--seconds",
                    str(a.seconds + 2), "-c", "8")  # fmt: skip
        rides = _spawn("rides", url, secret, "--rate", str(a.rides), "--seconds", seconds,
                       "--prefix", "m-", "-c", "256")  # fmt: skip
        time.sleep(1.0)  # the load is running before the first read
        floor = _spawn("market", url, secret, *reads, "--path", BASELINE)
        loaded = loadgen("market", url, secret, *reads, "--prefix", "loaded")
        floor_loaded = _result(floor, a.seconds + 120)
        ride_result = _result(rides, a.seconds + 120)
        background = _result(bg, a.seconds + 120)
    print(json.dumps({
        "bench": "market_reads",
        "machine": machine(),
        "drivers": a.drivers,
        "profile": a.profile,
        "first_read_ms": first,
        "reads_alone": alone,
        "reads_loaded": loaded,
        # The same reads of /healthz (no backend, no work) at the same rate and time: the
        # floor this machine, the HTTP stack and the event loop set for any read.
        "baseline_alone": floor_alone,
        "baseline_loaded": floor_loaded,
        "p99_over_baseline_ms": {
            "alone": round(alone["p99_ms"] - floor_alone["p99_ms"], 2),
            "loaded": round(loaded["p99_ms"] - floor_loaded["p99_ms"], 2),
        },
        # The instance's CPU per market read, less what as many /healthz reads cost it
        # (background loops included in both).
        "instance_cpu_ms_per_read": round(
            1000 * (market_cpu - floor_cpu) / max(1, alone["count"]), 3
        ),
        # Redis (the three masters) per read alone: CPU and command time, and the
        # market read's CPU less a /healthz read's (background jobs run under both).
        "redis_per_read_alone": {
            "market": redis_market,
            "baseline": redis_floor,
            "market_cpu_ms_over_baseline": round(
                redis_market["cpu_ms"] - redis_floor["cpu_ms"], 3
            ),
        },
        "rides_beside": ride_result,
        "background_batches": background,
        "target_p99_ms": TARGET_P99_MS,
        "met": loaded["p99_ms"] <= TARGET_P99_MS,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
