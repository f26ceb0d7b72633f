"""Instructions per fix of the Redis index's write path alone, under valgrind's callgrind.

    python -m loadtest.bench.upsert_instructions [--fixes 2000] [--callers 64]

What an HTTP location update or a WebSocket frame costs the service between the use case
and Redis: `callers` tasks each make a fix's Position and upsert it alone through the
CoalescingGeoIndex over a RedisGeoIndex on a redis-server of its own (the same 2,000
drivers and positions as loadtest.bench.http_inprocess), so fixes share batches as they do
under load. Counted only while the measured fixes are written (`callgrind_control -i
on/off`: start-up and a warm-up of 2,500 fixes are not), in one process with no
background jobs: a count repeats to about 0.1 % run after run, and a change of a thousand
instructions a fix shows. Redis's own work is another process's, not counted
(loadtest.bench.split_write_cost counts it). Needs valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import uvloop

from dispatch.adapters.redis_client import connect
from geoindex import CoalescingGeoIndex, Position, RedisGeoIndex
from loadtest.bench.harness import callgrind_counting, callgrind_run, machine
from loadtest.redis_procs import RedisServer


async def _write(redis_url: str, fixes: int, callers: int) -> None:
    """The measured process (run under callgrind by main)."""
    client = connect(redis_url, cluster=False, timeout_s=2.0)
    index = CoalescingGeoIndex(RedisGeoIndex(client, ttl_ms=30_000))
    seq0, now = int(time.time() * 1e6), int(time.time() * 1e3)

    async def drive(start: int, count: int) -> None:
        pending = iter(range(start, start + count))

        async def caller() -> None:
            for i in pending:
                lat, lng = 52.52 + (i % 97) * 0.0005, 13.405 + (i % 89) * 0.0007
                await index.upsert_valid([Position(f"h{i % 2000}", lat, lng, now + i, seq0 + i)])

        await asyncio.gather(*(caller() for _ in range(callers)))

    await drive(0, 2500)
    callgrind_counting(True)
    await drive(2500, fixes)
    callgrind_counting(False)
    await index.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.upsert_instructions")
    p.add_argument("--fixes", type=int, default=2000)
    p.add_argument("--callers", type=int, default=64)
    p.add_argument("--write", help=argparse.SUPPRESS)  # the process under callgrind
    a = p.parse_args(argv)
    if a.write:
        uvloop.run(_write(a.write, a.fixes, a.callers))
        return
    with RedisServer(tie_to_parent=True) as redis:
        count, _ = callgrind_run([
            "loadtest.bench.upsert_instructions", "--write", redis.url,
            "--fixes", str(a.fixes), "--callers", str(a.callers),
        ])  # fmt: skip
    print(json.dumps({
        "bench": "upsert_path_instructions",
        "machine": machine(),
        "load": f"{a.callers} callers, one fix each at a time, {a.fixes} fixes, local Redis",
        "instructions_per_fix": round(count / a.fixes),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
