"""CPU per HTTP location update inside one process: aiohttp's own request pipeline, no sockets.

    python -m loadtest.bench.http_inprocess [--updates 8000] [--rounds 3] [--sides ...]

The apps answer raw HTTP/1.1 requests written into aiohttp's protocol over an in-memory
transport: parsing, the router, middlewares, the handler, the index and writing the answer
are the real ones; the kernel's socket work and the load generator are not there, and
nothing is scheduled out between processes. On a shared machine that makes this the
steadier measure of what a request costs in Python (`http_vs_ceiling` gives the rate over
real sockets). 64 connections each keep one update in flight, the same 2,000 drivers and
bodies as the wrk script. Sides, in alternating rounds, this process's CPU per update:

- ceiling: the trivial handler of loadtest/bench/ceiling.py;
- bare: the service's app, its location handler replaced by the ceiling's, no middleware
  and no response hook;
- chain: the same with a middleware that does nothing (aiohttp's middleware chain alone);
- edge: the same with the service's middleware (request id, deadline, errors, metrics);
- trivial: the same with the response hook too (the whole app around a trivial handler);
- checked: the location handler's own checks (token, path, body, rate), no index;
- redis: the service as it is, on a standalone Redis of its own;
- embedded: the service as it is, on the embedded index.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import uvloop
from aiohttp import web

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.domain.principals import parse_subject
from dispatch.entrypoints import appkeys, jsonio, routes, schemas, views_drivers
from dispatch.entrypoints.app import create_app
from dispatch.entrypoints.routes import Handler
from dispatch.settings import Settings
from loadtest.bench import ceiling
from loadtest.bench.harness import machine, median
from loadtest.redis_procs import RedisServer

SECRET = "bench-inprocess-secret-0123456789-0123"
ROUTE = "/v1/drivers/{driver_id}/location"
SIDES = ("ceiling", "bare", "chain", "edge", "trivial", "checked", "redis", "embedded")


class Transport(asyncio.Transport):
    """Takes what the server writes; the first write of an answer wakes the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.answered: asyncio.Future[None] | None = None
        self.closing = False

    def write(self, data: Any) -> None:
        if not bytes(data[:12]) == b"HTTP/1.1 202":
            raise RuntimeError(f"not accepted: {bytes(data[:300])!r}")
        if self.answered is not None and not self.answered.done():
            self.answered.set_result(None)

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def _trivial(request: web.Request) -> web.Response:
    return await ceiling.location(request)


@web.middleware
async def _passing(request: web.Request, handler: Handler) -> web.StreamResponse:
    return await handler(request)


async def _checked(request: web.Request) -> web.Response:
    """The location handler's checks, then the ceiling's answer: no index."""
    app = request.app
    _actor, driver_id = views_drivers._path_driver(request, app)
    raw = await jsonio.read_body(request, app[appkeys.SETTINGS].max_body_bytes)
    schemas.fix_of(schemas.parse(schemas.LOCATION, raw))
    views_drivers.check_rate(app, driver_id)
    return web.Response(body=ceiling.ACCEPTED, status=202, content_type="application/json")


# With quiet_jobs: the service's background jobs (the timers' sweeper ten times a second,
# the index's sweep, surge rounds, the areas' refresh) an hour apart, so a count holds the
# requests' own work only (bench.http_instructions --quiet-jobs).
QUIET_JOBS = {
    "sweep_interval_s": 3600.0,
    "index_sweep_interval_s": 3600.0,
    "surge_interval_s": 3600.0,
    "surge_lease_s": 7200.0,
    "areas_refresh_s": 3600.0,
}


def _app(side: str, redis_url: str, quiet_jobs: bool = False) -> web.Application:
    if side == "ceiling":
        return ceiling.make_app()
    handler = {
        "bare": _trivial,
        "chain": _trivial,
        "edge": _trivial,
        "trivial": _trivial,
        "checked": _checked,
    }
    saved = list(routes.ROUTES)
    if side in handler:
        swap = handler[side]
        routes.ROUTES[:] = [
            dataclasses.replace(e, handler=swap) if e.path == ROUTE else e for e in saved
        ]
    try:
        settings = Settings(
            jwt_secret=SECRET,
            redis_url=None if side == "embedded" else redis_url,
            driver_rate_per_s=1e9,  # one driver's fixes come faster than any app sends
            driver_rate_burst=10**9,
            **(QUIET_JOBS if quiet_jobs else {}),  # type: ignore[arg-type]
        )
        app = create_app(settings)
    finally:
        routes.ROUTES[:] = saved
    if side in ("bare", "chain"):
        app.middlewares[:] = [] if side == "bare" else [_passing]
    if side in ("bare", "chain", "edge"):
        app.on_response_prepare.clear()
    return app


def _requests(tokens: list[bytes], n: int, seq0: int) -> Iterator[bytes]:
    for i in range(n):
        d = i % len(tokens)
        body = b'{"lat":%.6f,"lng":%.6f,"ts":%d,"seq":%d}' % (
            52.52 + (i % 97) * 0.0005, 13.405 + (i % 89) * 0.0007, int(time.time() * 1e3), seq0 + i
        )  # fmt: skip
        yield (
            b"POST /v1/drivers/h%d/location HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (d, tokens[d], len(body), body)
        )


async def _drive(server: web.Server, requests: list[bytes], connections: int) -> None:
    loop = asyncio.get_running_loop()
    pending = iter(requests)

    async def connection() -> None:
        proto = server()
        transport = Transport()
        proto.connection_made(transport)
        for raw in pending:
            transport.answered = loop.create_future()
            proto.data_received(raw)
            await transport.answered
        proto.connection_lost(None)

    await asyncio.gather(*(connection() for _ in range(connections)))


async def run(a: argparse.Namespace, redis_url: str) -> dict[str, Any]:
    codec = TokenCodec(SECRET)
    tokens = [codec.issue(parse_subject(f"driver:h{i}"), 3600).encode() for i in range(2000)]
    runners = {}
    for side in a.sides:
        runner = web.AppRunner(_app(side, redis_url), access_log=None)
        await runner.setup()
        runners[side] = runner
    seq = int(time.time() * 1e6)
    cpu: dict[str, list[float]] = {side: [] for side in a.sides}
    try:
        for runner in runners.values():  # warm-up: every token verified once, caches filled
            assert runner.server is not None
            await _drive(runner.server, list(_requests(tokens, 4000, seq)), a.connections)
            seq += 4000
        for _ in range(a.rounds):
            for side, runner in runners.items():
                assert runner.server is not None
                requests = list(_requests(tokens, a.updates, seq))
                seq += a.updates
                started = time.process_time()
                await _drive(runner.server, requests, a.connections)
                cpu[side].append((time.process_time() - started) * 1e6 / a.updates)
    finally:
        for runner in runners.values():
            await runner.cleanup()
    us = {side: round(median(xs), 1) for side, xs in cpu.items()}
    return {
        "bench": "http_location_updates_in_process",
        "machine": machine(),
        "load": f"{a.connections} connections, {a.updates} updates a round, {a.rounds} rounds",
        "cpu_us_per_update_median": us,
        "cpu_us_per_update_rounds": {k: [round(x, 1) for x in v] for k, v in cpu.items()},
        **(
            {"cpu_ratio_ceiling_to_redis": round(us["ceiling"] / us["redis"], 3)}
            if {"ceiling", "redis"} <= us.keys()
            else {}
        ),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.http_inprocess")
    p.add_argument("--updates", type=int, default=8000, help="a side's updates a round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--sides", default=",".join(SIDES))
    a = p.parse_args(argv)
    a.sides = a.sides.split(",")
    if unknown := set(a.sides) - set(SIDES):
        p.error(f"unknown sides {sorted(unknown)}; known: {', '.join(SIDES)}")
    with RedisServer(tie_to_parent=True) as redis:
        result = uvloop.run(run(a, redis.url))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
