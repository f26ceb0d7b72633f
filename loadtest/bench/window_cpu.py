"""The CPU a batched-matching window costs the instance that solves it, on Redis.

    python -m loadtest.bench.window_cpu [--riders 50,100] [--drivers 5000] [--windows 5]
                                        [--profile]

A real redis-server started here; the service wired by its own bootstrap in this process
(DISPATCH_MATCH_WINDOW_MS=2000); --drivers drivers online in the rides benchmark's city.
Per entry of --riders (a window's riders: 50 is 25 requests a second for a 2 s window),
--windows times: that many ride requests (not timed), then one window round (every
region of the city at once), timed in CPU of this process (time.process_time) and wall.
On a busy machine the wall time is mostly waiting for a core; the CPU time is what the
window would take on a core of its own, so it bounds the request-to-offer latency beyond
the window from below. Beside it, what does not depend on the machine's load: the round
trips to Redis per rider (this process's writes to a connection, counted as
loadtest/bench/profiled.py counts them: a redis-py pipeline is one, and so is each of the
edge's batch sends to a node, the index's searches included) and the Redis commands per
rider (INFO commandstats: a script's own commands included). Prints
one JSON object (medians over the windows); --profile adds the functions that took the
most CPU in the last window.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import random
import statistics
import sys
import time
from typing import Any

import orjson

from dispatch.bootstrap import bootstrap
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.service_layer.batching import window_round
from dispatch.service_layer.drivers import update_locations
from dispatch.service_layer.ride_requests import new_ride_id, request_ride
from dispatch.settings import Settings
from geoindex import Position
from loadtest.bench.harness import calls_delta, machine, redis_calls
from loadtest.bench.profiled import RoundTrips
from loadtest.redis_procs import RedisServer
from loadtest.scenario.city import City


async def measure(url: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(redis_url=url, match_window_ms=2000, driver_ttl_s=3600)
    out: dict[str, Any] = {"machine": {}, "drivers": args.drivers, "runs": []}
    async with bootstrap(settings) as runtime:
        deps = runtime.deps
        city, rng = City(), random.Random(1)
        now = deps.clock.now_ms()
        fleet = [Position(f"d{i}", *city.uniform_point(rng), now) for i in range(args.drivers)]
        await update_locations(deps, Principal(Role.FLEET, "bench"), fleet)
        held: dict[int, int] = {}
        await window_round(deps, "bench", held)  # leases taken, connections opened
        profile_text = ""
        trips = RoundTrips()
        for n in (int(x) for x in args.riders.split(",")):
            cpu, wall, matched, sent, commands = [], [], [], [], []
            for w in range(args.windows):
                for i in range(n):
                    rider = Principal(Role.RIDER, f"u{n}-{w}-{i}")
                    at = LatLng(*city.demand_point(rng))
                    await request_ride(deps, rider, new_ride_id(rider.id, None), at, None)
                profiler = cProfile.Profile(time.process_time) if args.profile else None
                calls = redis_calls([port])
                trips.start()
                c0, t0 = time.process_time(), time.perf_counter()
                if profiler:
                    profiler.enable()
                stats = await window_round(deps, "bench", held)
                if profiler:
                    profiler.disable()
                    text = io.StringIO()
                    pstats.Stats(profiler, stream=text).sort_stats(args.sort).print_stats(args.top)
                    profile_text = text.getvalue()
                cpu.append((time.process_time() - c0) * 1000)
                wall.append((time.perf_counter() - t0) * 1000)
                trips.on = False
                sent.append(sum(trips.counts.values()) / n)
                commands.append(sum(calls_delta(calls, redis_calls([port])).values()) / n)
                matched.append(sum(s.matched for s in stats))
            out["runs"].append(
                {
                    "riders": n,
                    "matched_median": statistics.median(matched),
                    "window_cpu_ms": round(statistics.median(cpu), 1),
                    "cpu_ms_per_rider": round(statistics.median(cpu) / n, 2),
                    "window_wall_ms": round(statistics.median(wall), 1),
                    "round_trips_per_rider": round(statistics.median(sent), 2),
                    "redis_commands_per_rider": round(statistics.median(commands), 1),
                }
            )
            sys.stderr.write(orjson.dumps(out["runs"][-1]).decode() + "\n")
    out["machine"] = machine()
    if args.profile:
        sys.stderr.write(profile_text)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--riders", default="50,100")
    p.add_argument("--drivers", type=int, default=5000)
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--sort", default="cumulative", help="the profile's order (pstats keys)")
    p.add_argument("--top", type=int, default=30, help="the profile's lines")
    args = p.parse_args(argv)
    with RedisServer(tie_to_parent=True) as redis:
        out = asyncio.run(measure(redis.url, redis.node.port, args))
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
