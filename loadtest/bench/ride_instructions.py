"""Instructions per ride request through HTTP against the use case alone, under callgrind;
and with --cpu, CPU time per ride one after the other against paced as the rides bench.

    python -m loadtest.bench.ride_instructions [--drivers 20000] [--rides 300]
                                               [--sides usecase,http,idle] [--keep DIR]
    python -m loadtest.bench.ride_instructions --cpu [--rate 50] [--rounds 3]

One Redis Cluster (3 masters, 3 replicas) and a fleet seeded as loadtest.bench.rides
seeds it (the city's drivers; riders at its hot spots), then each side in a process of
its own under valgrind's callgrind, counting only while its measured rides are served
(`callgrind_control -i on/off`, as loadtest/bench/http_instructions.py). The service's
app is set up in each (create_app, without its background loops: they wake by the wall
clock, which callgrind slows some 50 times against the requests). The rides are made
one after the other, each by a rider of its own with a token of its own, as the rides
bench's are (no token is ever known to the instance).

- usecase: request_ride_once on the app's deps, as the view calls it (no web server,
  no token check, no body to read), the default product named as the view names it;
- unnamed: the same with no product, as ride_cpu calls it (the product's search and
  the reservation's check of it are not made: a body naming no product asks for the
  default one, which the view names);
- http: `POST /v1/rides` written into aiohttp's own protocol over an in-memory transport
  (parsing, router, middleware, token check, body, view, answer: the real ones; the
  kernel's socket work is not there);
- idle: the whole app, its background loops running, serving nothing for as long as
  its own rides took: what the loops cost a second of the wall clock, and per ride at
  50 rides a second (the rides bench subtracts this as idle).

Per side: instructions per ride, and the Redis commands the masters ran per ride (INFO
commandstats: scripts and the commands inside them, warm-up included), which show
whether the two paths ask Redis for the same work; http - usecase is the HTTP path's
own cost. With --keep the callgrind files stay in DIR (callgrind_annotate
--inclusive=yes). Needs valgrind. Kernel work is not counted.

--cpu: no callgrind; usecase and http in this process, each one after the other and
then open loop at --rate rides a second (as the rides bench sends them), rounds in
turn: this process's CPU per ride and the Redis processes' per ride above what they
spend idle for as long. On a shared machine a paced ride finds its caches cold: the
same instructions cost more CPU time than back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.bootstrap import bootstrap
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role, parse_subject
from dispatch.entrypoints import app as app_module
from dispatch.entrypoints import appkeys
from dispatch.entrypoints.app import create_app
from dispatch.entrypoints.views_region_split import migrations
from dispatch.entrypoints.views_rides import _render
from dispatch.service_layer import ride_requests
from dispatch.settings import Settings
from geoindex import Position
from loadtest.bench.harness import (
    callgrind_counting,
    callgrind_run,
    calls_delta,
    cpu_seconds,
    machine,
    median,
    redis_calls,
)
from loadtest.bench.http_inprocess import Transport
from loadtest.redis_procs import RedisCluster
from loadtest.scenario.city import City

SECRET = "bench-ride-instructions-0123456789-0123"
SIDES = ("usecase", "http", "unnamed", "idle")
CITY = City()


def _settings(cluster_url: str) -> Settings:
    # As loadtest.bench.rides starts its instance: drivers stay online, offers do not
    # expire within the run, immediate matching.
    return Settings(
        redis_cluster_url=cluster_url,
        jwt_secret=SECRET,
        driver_ttl_s=3600,
        offer_timeout_s=600,
        match_window_ms=0,
    )


async def _seed(cluster_url: str, drivers: int) -> None:
    rng = random.Random(1)
    async with bootstrap(_settings(cluster_url)) as runtime:
        index = runtime.deps.index
        now = runtime.deps.clock.now_ms()
        fixes = [Position(f"s{i}", *CITY.uniform_point(rng), now) for i in range(drivers)]
        for start in range(0, drivers, 1000):
            await index.upsert(fixes[start : start + 1000])


class _Transport(Transport):
    """Takes what the server writes; an answer's last write wakes the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[bytes] = []

    def write(self, data: Any) -> None:
        chunk = bytes(data)
        if chunk.startswith(b"HTTP/1.1 "):
            self.statuses.append(chunk[9:12])
        if b"\r\n\r\n" in chunk or not chunk.startswith(b"HTTP/1.1 "):  # the body came
            if self.answered is not None and not self.answered.done():
                self.answered.set_result(None)


def _pickups(n: int, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [CITY.demand_point(rng) for _ in range(n)]


async def _serve(
    side: str,
    rides: int,
    cluster_url: str,
    prefix: str,
    rate: float = 0,
    meter: Callable[[bool], None] = callgrind_counting,
) -> dict[str, Any]:
    """One side, in this process (under callgrind, by main); `meter(True)` and
    `meter(False)` around the measured rides (or the idle window). `rate`: rides a
    second, each started when due (0: one after the other)."""
    app = create_app(_settings(cluster_url))
    if side != "idle":  # the request's own work: no background loop counted with it
        kept = [c for c in app.cleanup_ctx if c in (app_module._backend, migrations)]
        app.cleanup_ctx[:] = kept
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    assert runner.server is not None
    deps = app[appkeys.RUNTIME].deps
    codec = TokenCodec(SECRET)
    warm, total = 30, 30 + rides
    riders = [f"{prefix}{side}-r{i}" for i in range(total)]
    pickups = _pickups(total, seed=7)  # the same pickups on every side
    tokens = [codec.issue(parse_subject(f"rider:{r}"), 3600).encode() for r in riders]
    proto = runner.server()
    transport = _Transport()
    proto.connection_made(transport)
    loop = asyncio.get_running_loop()

    async def by_http(i: int) -> None:
        lat, lng = pickups[i]
        body = b'{"pickup":{"lat":%r,"lng":%r}}' % (lat, lng)
        raw = (
            b"POST /v1/rides HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
            b"Idempotency-Key: %s-1\r\nContent-Length: %d\r\n\r\n%s"
            % (tokens[i], riders[i].encode(), len(body), body)
        )
        transport.answered = loop.create_future()
        proto.data_received(raw)
        await transport.answered

    # As the view calls it: the default product named (a body naming none asks for it),
    # duplicates waiting 0.8 of the deadline; `unnamed` as ride_cpu does, no product.
    product = None if side == "unnamed" else deps.products.default
    wait_s = app[appkeys.SETTINGS].request_timeout_s * 0.8

    async def by_use_case(i: int) -> None:
        rider = Principal(Role.RIDER, riders[i])
        lat, lng = pickups[i]
        await ride_requests.request_ride_once(
            deps, rider, LatLng(lat, lng), None, f"{riders[i]}-1", _render, wait_s, None, product
        )

    one = by_use_case if side in ("usecase", "unnamed") else by_http
    for i in range(warm):  # connections opened, scripts loaded
        await one(i)
    started = time.monotonic()
    if side == "idle":
        for i in range(warm, total):
            await one(i)
        took = time.monotonic() - started
        meter(True)
        await asyncio.sleep(took)
        meter(False)
    else:
        meter(True)
        for i in range(warm, total):
            if rate > 0:  # open loop, as the rides bench's load: each ride when due
                await asyncio.sleep(max(0.0, started + (i - warm) / rate - time.monotonic()))
            await one(i)
        meter(False)
        took = time.monotonic() - started
    bad = [s for s in transport.statuses if s != b"201"]
    proto.connection_lost(None)
    await runner.cleanup()
    return {"window_s": round(took, 2), "not_201": len(bad)}


def _count(side: str, a: argparse.Namespace, cluster_url: str) -> tuple[int, dict[str, Any]]:
    out_file = "/dev/null" if a.keep is None else str(Path(a.keep) / f"callgrind.{side}")
    count, out = callgrind_run([
        "loadtest.bench.ride_instructions", "--serve", side,
        "--rides", str(a.rides), "--cluster-url", cluster_url, "--prefix", a.prefix,
    ], out_file)  # fmt: skip
    return count, json.loads(out.strip().splitlines()[-1])


def _cpu(a: argparse.Namespace, sides: list[str]) -> None:
    """Each side in this process, one after the other and at --rate, in alternating
    rounds: this process's CPU and the Redis processes' (less what they spend idle for as
    long) per ride, medians of the rounds."""
    cpu: dict[str, list[float]] = {}
    redis_cpu: dict[str, list[float]] = {}
    with RedisCluster(tie_to_parent=True) as cluster:
        pids = [n.proc.pid for n in cluster.nodes if n.proc is not None]

        def redis_s() -> float:
            return sum(cpu_seconds(pid) for pid in pids)

        mark: list[float] = []

        def meter(on: bool) -> None:
            mark.extend((time.process_time(), redis_s(), time.monotonic()))

        async def run() -> None:
            await _seed(cluster.url, a.drivers)
            for r in range(a.rounds):
                for side in sides:
                    for rate in (0.0, a.rate):
                        name = f"{side}_at_{rate:g}_per_s" if rate else f"{side}_back_to_back"
                        mark.clear()
                        await _serve(side, a.rides, cluster.url, f"c{r}{rate:g}", rate, meter)
                        t0, r0, w0, t1, r1, w1 = mark
                        idle0 = redis_s()
                        await asyncio.sleep(w1 - w0)  # the Redis processes' own, as long
                        idle = redis_s() - idle0
                        cpu.setdefault(name, []).append((t1 - t0) * 1e3 / a.rides)
                        redis_cpu.setdefault(name, []).append((r1 - r0 - idle) * 1e3 / a.rides)

        uvloop.run(run())
    print(json.dumps({
        "bench": "ride_request_cpu_paced",
        "machine": machine(),
        "drivers": a.drivers,
        "rides_per_round": a.rides,
        "service_cpu_ms_per_ride": {k: round(median(v), 3) for k, v in cpu.items()},
        "service_cpu_ms_per_ride_rounds": {k: [round(x, 3) for x in v] for k, v in cpu.items()},
        "redis_cpu_ms_per_ride_above_idle": {k: round(median(v), 3) for k, v in redis_cpu.items()},
        "redis_cpu_ms_per_ride_rounds": {
            k: [round(x, 3) for x in v] for k, v in redis_cpu.items()
        },
    }, indent=1))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.ride_instructions")
    p.add_argument("--drivers", type=int, default=20_000)
    p.add_argument("--rides", type=int, default=300, help="a side's measured rides")
    p.add_argument("--sides", default=",".join(SIDES))
    p.add_argument("--keep", metavar="DIR", help="keep the callgrind files in DIR")
    p.add_argument("--cpu", action="store_true", help="CPU time, paced and not (no callgrind)")
    p.add_argument("--rate", type=float, default=50.0, help="--cpu: the paced rides a second")
    p.add_argument("--rounds", type=int, default=3, help="--cpu: rounds of every pair")
    p.add_argument("--serve", help=argparse.SUPPRESS)  # the process under callgrind
    p.add_argument("--cluster-url", help=argparse.SUPPRESS)
    p.add_argument("--prefix", default="b", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.serve:
        print(json.dumps(uvloop.run(_serve(a.serve, a.rides, a.cluster_url, a.prefix))))
        return
    sides = a.sides.split(",")
    if unknown := set(sides) - set(SIDES):
        p.error(f"unknown sides {sorted(unknown)}; known: {', '.join(SIDES)}")
    if a.cpu:
        _cpu(a, [s for s in sides if s != "idle"])
        return
    if a.keep:
        Path(a.keep).mkdir(parents=True, exist_ok=True)
    per_ride: dict[str, int] = {}
    redis_per_ride: dict[str, dict[str, float]] = {}
    runs: dict[str, Any] = {}
    with RedisCluster(tie_to_parent=True) as cluster:
        masters = [n.port for n in cluster.masters()]
        uvloop.run(_seed(cluster.url, a.drivers))
        for side in sides:
            before = redis_calls(masters)
            count, runs[side] = _count(side, a, cluster.url)
            calls = calls_delta(before, redis_calls(masters))
            total = a.rides + 30  # the warm-up's rides are in the commands, not the count
            if side == "idle":  # the background loops, by the wall clock's second
                idle_per_s = count / runs[side]["window_s"]
                runs[side]["instructions_per_s"] = round(idle_per_s)
                runs[side]["per_ride_at_50_rides_per_s"] = round(idle_per_s / 50)
            else:
                per_ride[side] = round(count / a.rides)
            redis_per_ride[side] = {
                k: round(v / total, 2) for k, v in sorted(calls.items()) if v / total >= 0.01
            }
    result: dict[str, Any] = {
        "bench": "ride_request_instructions",
        "machine": machine(),
        "drivers": a.drivers,
        "rides_per_side": a.rides,
        "instructions_per_ride": per_ride,
        "side_runs": runs,
        "redis_commands_per_ride": redis_per_ride,
    }
    if {"usecase", "http"} <= per_ride.keys():
        result["http_over_usecase"] = per_ride["http"] - per_ride["usecase"]
        result["http_to_usecase"] = round(per_ride["http"] / per_ride["usecase"], 3)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
