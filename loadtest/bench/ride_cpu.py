"""What one ride request costs the service's own code, with no HTTP and no concurrency.

    python -m loadtest.bench.ride_cpu [--drivers 20000] [--rides 1000] [--rounds 3]
                                      [--profile /tmp/ride_cpu.prof]

The service's ride request (request_ride_once, with an Idempotency-Key) run one after the
other in this process against its own Redis Cluster (3 masters, 3 replicas), drivers
spread over a city: this process's CPU per ride (the use case and the Redis client, no
web server, no token check), the Redis round trips it makes (the client's writes, named by
command or script: loadtest/bench/profiled.py) and the Redis processes' CPU per ride,
replicas included. The baseline measured in the same run: a bare HGET through the same
client, one after the other, for the CPU a round trip costs the client at the least.
Rounds alternate with the baseline; the medians are reported. After each round the
bench idles as long as the round took: this process's and the Redis processes' CPU then
(background loops, the cluster's own traffic), per ride as if rides had run, is reported
as idle_*: the rides' own cost is the figure above it. A last round logs every
command in the masters' slow logs: Redis's own time per ride by script and command;
then its rides' drivers are released (release_driver, as a ride's end does): the round
trips of one release. Then the masters' time of a timer sweep's claim (--claims of
them, the rides' timers waiting, none due), which every instance makes each sweep
interval.
With --profile, one more round runs under cProfile timed by this process's CPU clock
(each event costs a clock read, so its figures are inflated, the proportions not much):
the stats go to PATH (`python -m pstats PATH`), the top of them by own and by cumulative
time to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import random
import sys
import time
from collections import Counter
from typing import Any

import redis

from dispatch.adapters import redis_deadlines
from dispatch.adapters.redis_client import connect
from dispatch.bootstrap import bootstrap
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.service_layer import reservations, ride_requests
from dispatch.settings import Settings
from geoindex import Position
from loadtest.bench.harness import cpu_seconds, machine, median, run_on_redis
from loadtest.bench.profiled import RoundTrips, script_names
from loadtest.redis_procs import RedisCluster

CENTRE = (52.52, 13.405)


def _redis_cpu(cluster: RedisCluster) -> float:
    return sum(cpu_seconds(n.proc.pid) for n in cluster.nodes if n.proc is not None)


async def bench(cluster: RedisCluster, a: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(1)
    trips = RoundTrips()
    lat0, lng0 = CENTRE
    # Drivers stay fresh for the whole run (an hour, as in loadtest.bench.rides): on a
    # busy machine loading them can take longer than the default TTL, and a ride that
    # finds only stale drivers measures a no_driver answer instead.
    # Immediate matching: the request's own search, reservation and offer are what is
    # measured (a window's work per rider: loadtest.bench.window_cpu).
    settings = Settings(redis_cluster_url=cluster.url, driver_ttl_s=3600, match_window_ms=0)
    async with bootstrap(settings) as runtime:
        deps = runtime.deps
        now = deps.clock.now_ms()
        fixes = [
            Position(f"d{i}", lat0 + rng.uniform(-0.08, 0.08), lng0 + rng.uniform(-0.12, 0.12), now)
            for i in range(a.drivers)
        ]
        for start in range(0, len(fixes), 1000):
            await deps.index.upsert(fixes[start : start + 1000])
        client = connect(cluster.url, cluster=True)  # the service's own client settings
        served = 0
        ride_ids: list[str] = []

        async def ride() -> None:
            nonlocal served
            served += 1
            rider = Principal(Role.RIDER, f"u{served}")
            at = LatLng(lat0 + rng.uniform(-0.04, 0.04), lng0 + rng.uniform(-0.06, 0.06))
            answer = await ride_requests.request_ride_once(
                deps, rider, at, None, f"k{served}", lambda r: r.id.encode()
            )
            ride_ids.append(answer.decode())

        async def hget() -> None:
            await client.hget("bench:{cpu}", "j")

        for _ in range(50):  # connections opened, scripts loaded
            await ride()
            await hget()
        rides_ms: list[float] = []
        hget_ms: list[float] = []
        redis_ms: list[float] = []
        idle_redis_ms: list[float] = []
        idle_ms: list[float] = []
        trips_per_ride: list[float] = []
        by_call: dict[str, float] = {}
        for _ in range(a.rounds):
            t0 = time.process_time()
            for _ in range(a.rides):
                await hget()
            hget_ms.append((time.process_time() - t0) * 1e3 / a.rides)
            r0, t0, w0 = _redis_cpu(cluster), time.process_time(), time.monotonic()
            trips.start()
            for _ in range(a.rides):
                await ride()
            trips.on = False
            rides_ms.append((time.process_time() - t0) * 1e3 / a.rides)
            redis_ms.append((_redis_cpu(cluster) - r0) * 1e3 / a.rides)
            # As long again with no ride: what this process and the Redis processes spend
            # by themselves (the service's background loops, the cluster's own traffic),
            # in "per ride" terms: the figures above it are the rides' own.
            wall = time.monotonic() - w0
            r0, t0 = _redis_cpu(cluster), time.process_time()
            await asyncio.sleep(wall)
            idle_ms.append((time.process_time() - t0) * 1e3 / a.rides)
            idle_redis_ms.append((_redis_cpu(cluster) - r0) * 1e3 / a.rides)
            trips_per_ride.append(sum(trips.counts.values()) / a.rides)
            by_call = {k: round(v / a.rides, 2) for k, v in trips.counts.most_common()}
        # One more round with every command in the masters' slow logs: Redis's time by
        # script (a script's figure includes the commands it runs, logged on their own too).
        masters = [redis.Redis(port=n.port) for n in cluster.masters()]
        for m in masters:
            m.config_set("slowlog-max-len", 1_000_000)
            m.config_set("slowlog-log-slower-than", 0)
            m.slowlog_reset()
        for _ in range(a.rides):
            await ride()
        redis_us = _by_script(masters, a.rides)
        claim_us = await _claim_cost(cluster, deps, a.claims)
        # The drivers of the last round's rides released, as a ride's end, a decline or an
        # offer timeout does: the round trips of one release.
        offered = [r for r in await deps.rides.get_many(ride_ids[-a.rides :]) if r and r.fence]
        trips.start()
        for r in offered:
            assert r.driver_id is not None and r.fence is not None
            await reservations.release_driver(deps, r.driver_id, r.id, r.fence)
        trips.on = False
        per_release = sum(trips.counts.values()) / max(1, len(offered))
        release_calls = {k: round(v / max(1, len(offered)), 2) for k, v in trips.counts.items()}
        if a.profile:
            prof = cProfile.Profile(time.process_time)
            prof.enable()
            for _ in range(a.rides):
                await ride()
            prof.disable()
            prof.dump_stats(a.profile)
            _print_top(a.profile, a.rides)
        await client.aclose()
    return {
        "bench": "ride_request_cpu",
        "machine": machine(),
        "drivers": a.drivers,
        "rides_per_round": a.rides,
        "service_cpu_ms_per_ride": round(median(rides_ms), 3),
        "service_cpu_ms_per_ride_rounds": [round(x, 3) for x in rides_ms],
        "baseline_hget_cpu_ms": round(median(hget_ms), 4),
        "ride_in_hgets": round(median(rides_ms) / median(hget_ms), 1),
        "round_trips_per_ride": round(median(trips_per_ride), 2),
        "round_trips_per_ride_by_call": by_call,
        "redis_cpu_ms_per_ride": round(median(redis_ms), 3),
        "redis_cpu_ms_per_ride_rounds": [round(x, 3) for x in redis_ms],
        "idle_service_cpu_ms_per_ride": round(median(idle_ms), 3),
        "idle_redis_cpu_ms_per_ride": round(median(idle_redis_ms), 3),
        "master_us_per_ride_by_call": redis_us,
        "master_us_per_sweep_claim": claim_us,
        "round_trips_per_release": round(per_release, 2),
        "round_trips_per_release_by_call": release_calls,
    }


def _print_top(path: str, rides: int) -> None:
    text = io.StringIO()
    stats = pstats.Stats(path, stream=text)
    for order in ("tottime", "cumulative"):
        stats.sort_stats(order).print_stats(30)
    print(f"== profile of {rides} rides, CPU clock\n{text.getvalue()}", file=sys.stderr)


def _by_script(masters: list[redis.Redis], rides: int) -> dict[str, float]:
    names = {sha.decode(): name for sha, name in script_names().items()}
    total: Counter[str] = Counter()
    for m in masters:
        for entry in m.slowlog_get(1_000_000):
            args = entry["command"].split()
            name = args[0].decode().upper()
            if name == "EVALSHA" and len(args) > 1:
                name += " " + names.get(args[1].decode(), "?")
            total[name] += entry["duration"]
        m.config_set("slowlog-log-slower-than", 10_000)
        m.close()
    return {k: round(v / rides, 1) for k, v in total.most_common() if v / rides >= 1}


async def _claim_cost(cluster: RedisCluster, deps: Any, claims: int) -> dict[str, float]:
    """The masters' time of one timer sweep's claim (every shard, one script each) with
    the rides' timers waiting and none due: what each instance spends every sweep
    interval, whatever it does, and grows with the shard count."""
    masters = [redis.Redis(port=n.port) for n in cluster.masters()]
    for m in masters:
        m.config_set("slowlog-max-len", 1_000_000)
        m.config_set("slowlog-log-slower-than", 0)
        m.slowlog_reset()
    for _ in range(claims):
        await deps.deadlines.claim(0, 64, 5_000)  # due at 0: nothing, ever
    us = sum(
        e["duration"]
        for m in masters
        for e in m.slowlog_get(1_000_000)
        if e["command"].startswith(b"EVALSHA")
    )
    for m in masters:
        m.config_set("slowlog-log-slower-than", 10_000)
        m.close()
    shards = redis_deadlines.SHARDS
    per_pass = us / max(1, claims)
    return {
        "shards": shards,
        "per_pass": round(per_pass, 1),
        "per_shard": round(per_pass / shards, 1),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.ride_cpu")
    p.add_argument("--drivers", type=int, default=20_000)
    p.add_argument("--rides", type=int, default=1000, help="per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", metavar="PATH", help="one more round under cProfile")
    p.add_argument("--claims", type=int, default=1000, help="timer sweeps' claims timed")
    a = p.parse_args(argv)
    with RedisCluster(tie_to_parent=True) as cluster:

        async def run(_url: str) -> dict[str, Any]:
            return await bench(cluster, a)

        run_on_redis(cluster.url, run)


if __name__ == "__main__":
    main()
