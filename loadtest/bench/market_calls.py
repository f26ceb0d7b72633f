"""Benchmark: Redis commands per ride request, without and with the market's counting.

    python -m loadtest.bench.market_calls [--rides 300] [--redis-url URL]

Round trips are the scripts the client sends (EVALSHA: one each, the path sends few other
commands); Redis's own work is every command run, those inside scripts included.

Runs the service's own ride request (dispatch.service_layer.ride_requests) against one
Redis, for riders spread over a small city with drivers that go straight back to work,
twice: once with the market's count of each request replaced by nothing (the ride path
before the market), once as shipped. Commands are read from INFO commandstats (every
command Redis ran, EVALSHA and pipelined ones included) and divided by the requests.
Prints one JSON object. Without --redis-url a redis-server is started on a free port;
with it, that Redis is FLUSHED and its statistics reset.
"""

from __future__ import annotations

import argparse
import random
import sys
from contextlib import ExitStack
from typing import Any
from unittest import mock

import orjson
import redis
import uvloop

from dispatch.bootstrap import bootstrap
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.service_layer import ride_requests
from dispatch.settings import Settings
from geoindex import Position
from loadtest.redis_procs import RedisServer

CENTRE = LatLng(52.52, 13.405)


def commands(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


async def ride_requests_run(url: str, rides: int, seed: int) -> None:
    rng = random.Random(seed)
    # Immediate matching: the commands counted are the ones one request runs.
    async with bootstrap(Settings(redis_url=url, match_window_ms=0)) as runtime:
        deps = runtime.deps
        now = deps.clock.now_ms()
        await deps.index.upsert(
            [
                Position(f"d{i}", CENTRE.lat + rng.uniform(-0.02, 0.02),
                         CENTRE.lng + rng.uniform(-0.03, 0.03), now)
                for i in range(rides)
            ]
        )  # fmt: skip
        for i in range(rides):
            pickup = LatLng(
                CENTRE.lat + rng.uniform(-0.02, 0.02), CENTRE.lng + rng.uniform(-0.03, 0.03)
            )
            rider = Principal(Role.RIDER, f"u{i}")
            await ride_requests.request_ride(deps, rider, f"r_{i:032x}", pickup, None)


def measure(url: str, rides: int, counting: bool) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    client.flushall()
    client.config_resetstat()
    if counting:
        uvloop.run(ride_requests_run(url, rides, 1))
    else:

        async def nothing(*_: object) -> None:
            return None

        with mock.patch.object(ride_requests, "count_request", nothing):
            uvloop.run(ride_requests_run(url, rides, 1))
    calls = commands(client)
    # Set-up (the drivers' fixes, loading scripts, INFO itself) is not the ride path.
    for setup in ("info", "config|resetstat", "flushall", "script|load", "script|exists"):
        calls.pop(setup, None)
    client.close()
    return {
        "scripts_per_request": round(calls.get("evalsha", 0) / rides, 2),
        "commands_per_request": round(sum(calls.values()) / rides, 2),
        "commands": calls,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rides", type=int, default=300)
    ap.add_argument("--redis-url")
    args = ap.parse_args(argv)
    with ExitStack() as stack:
        url = args.redis_url or stack.enter_context(RedisServer()).url
        before = measure(url, args.rides, counting=False)
        after = measure(url, args.rides, counting=True)
    added = {
        name: round((n - before["commands"].get(name, 0)) / args.rides, 2)
        for name, n in after["commands"].items()
        if n != before["commands"].get(name, 0)
    }
    out = {
        "benchmark": "ride_path_redis_calls",
        "rides": args.rides,
        "scripts_per_request": {
            "before_market": before["scripts_per_request"],
            "with_market": after["scripts_per_request"],
        },
        "commands_per_request": {
            "before_market": before["commands_per_request"],
            "with_market": after["commands_per_request"],
        },
        "added_commands_per_request": added,
    }
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()
