"""Instructions per HTTP location update, side by side, under valgrind's callgrind.

    python -m loadtest.bench.http_instructions [--updates 2000] [--sides ...]

The sides of loadtest/bench/http_inprocess.py (the same in-memory transport, requests and
apps), each in a process of its own under callgrind, counting only while the measured
requests are served (`callgrind_control -i on/off`: start-up, warm-up and teardown are not
counted). Instructions do not move with the machine's load, so a change of a few percent
shows here when CPU time on a shared machine cannot resolve it. With PYTHONHASHSEED fixed
a non-Redis side gives the same count to 0.1 % run after run; the `redis` side moves by
some 10 % (how fixes share a batch depends on timing, and valgrind slows the client 50x
against Redis). Kernel work (the sockets' system calls) is not counted. One more side:

- usecase: the service on Redis with the index's write answering at once (no Redis call):
  the location use case (checks, metrics, geofence) and the answer, not the index.

--quiet-jobs: the service's sides run background jobs on the wall clock (the timers'
sweeper ten times a second, the index's sweep every 5 s, surge rounds, the areas'
refresh), and under callgrind a measured window lasts some 50 times longer than without
it, so those jobs are counted for far longer than the updates would take: 11 to 16
thousand an update on the `redis` side at load 2 (2026-12-01, the same trees with and
without the flag), more when the machine is busy and the window grows (the tree before
that morning's work counted 563k at load 5, 451k at load 2). With the flag they run
an hour apart (the event stream's reader still runs), and the count is the requests' own
work, as the ceiling's is. The default keeps them, as before.

Needs valgrind (`apt-get install valgrind`).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import uvloop
from aiohttp import web

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.domain.principals import parse_subject
from dispatch.entrypoints import appkeys
from geoindex import Position, UpsertResult
from loadtest.bench import http_inprocess as hp
from loadtest.bench.harness import callgrind_counting, callgrind_run, machine
from loadtest.redis_procs import RedisServer

SIDES = (*hp.SIDES, "usecase")


class _Answering:
    """An index whose write accepts every fix at once (and whose sweep finds nothing: the
    index's sweeper calls it every few seconds)."""

    async def upsert_valid(self, positions: Sequence[Position]) -> list[UpsertResult]:
        return [UpsertResult.ACCEPTED] * len(positions)

    async def expire(self, cutoff_ms: int) -> list[str]:
        return []


async def _serve(side: str, updates: int, redis_url: str, quiet_jobs: bool = False) -> None:
    """One side, in this process (run under callgrind by main)."""
    codec = TokenCodec(hp.SECRET)
    tokens = [codec.issue(parse_subject(f"driver:h{i}"), 3600).encode() for i in range(2000)]
    app = hp._app("redis" if side == "usecase" else side, redis_url, quiet_jobs)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    assert runner.server is not None
    if side == "usecase":
        object.__setattr__(app[appkeys.RUNTIME].deps, "index", _Answering())
    seq = int(time.time() * 1e6)
    await hp._drive(runner.server, list(hp._requests(tokens, 2500, seq)), 64)  # warm-up
    requests = list(hp._requests(tokens, updates, seq + 2500))
    callgrind_counting(True)
    await hp._drive(runner.server, requests, 64)
    callgrind_counting(False)
    await runner.cleanup()


def _count(side: str, updates: int, redis_url: str, quiet_jobs: bool = False) -> int:
    count, _ = callgrind_run([
        "loadtest.bench.http_instructions",
        "--serve", side, "--updates", str(updates), "--redis-url", redis_url,
        *(["--quiet-jobs"] if quiet_jobs else []),
    ])  # fmt: skip
    return count


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.http_instructions")
    p.add_argument("--updates", type=int, default=2000, help="a side's measured updates")
    p.add_argument("--sides", default=",".join(SIDES))
    p.add_argument(
        "--quiet-jobs",
        action="store_true",
        help="the service's background jobs an hour apart: the requests' own work only",
    )
    p.add_argument("--serve", help=argparse.SUPPRESS)  # the process under callgrind
    p.add_argument("--redis-url", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.serve:
        uvloop.run(_serve(a.serve, a.updates, a.redis_url, a.quiet_jobs))
        return
    sides = a.sides.split(",")
    if unknown := set(sides) - set(SIDES):
        p.error(f"unknown sides {sorted(unknown)}; known: {', '.join(SIDES)}")
    with RedisServer(tie_to_parent=True) as redis:
        per_update = {
            s: round(_count(s, a.updates, redis.url, a.quiet_jobs) / a.updates) for s in sides
        }
    print(json.dumps({
        "bench": "http_location_update_instructions",
        "machine": machine(),
        "load": f"64 connections, {a.updates} updates a side, PYTHONHASHSEED fixed"
        + (", background jobs an hour apart" if a.quiet_jobs else ""),
        "instructions_per_update": per_update,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
