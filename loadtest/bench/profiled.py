"""`dispatch serve` under cProfile, switched by signals, so a benchmark profiles only the
part of a run it means to (not the seeding before it); the Redis round trips made while
switched on are counted too.

    python -m loadtest.bench.profiled OUT.prof serve ...   # the `dispatch` arguments
    kill -USR1 <pid>   # start profiling and counting
    kill -USR2 <pid>   # stop; write the stats to OUT.prof (pstats format) and the round
                       # trips to OUT.prof.calls.json

With OUT ending in .json only the round trips are counted (into OUT), without cProfile:
under cProfile a loaded instance is several times slower, and some requests never end.

Read the file with `python -m pstats OUT.prof` (sort cumtime / tottime, stats 30). Its
times are the wall clock's: on a busy machine a function is also billed for the time the
process waited for a core (a socket write that wakes a Redis on the same core shows up
as a slow write). CPU time as the timer costs a system call per event, too slow here.

A round trip is one write of the Redis client to a connection: a command, or a pipeline's
commands to one node (a cluster pipeline over three nodes is three, sent at once), whether
redis-py writes it or the index's own batch path (geoindex/redis_pipeline.py). Each is
named by its first command (a script by its file name), `+` marking a pipeline.
"""

from __future__ import annotations

import cProfile
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterable
from importlib import resources
from types import FrameType
from typing import Any

import orjson
from redis.asyncio.connection import AbstractConnection

from dispatch.adapters.redis_drivers import SCRIPTS as DRIVER_SCRIPTS
from dispatch.adapters.redis_idempotency import SCRIPTS as IDEMPOTENCY_SCRIPTS
from dispatch.entrypoints.cli import main
from geoindex import Script
from geoindex.redis_pipeline import Pipelined
from loadtest.instances import DispatchInstance


def switch(inst: DispatchInstance, sig: signal.Signals, settle_s: float = 0.2) -> None:
    """Start (SIGUSR1) or stop (SIGUSR2) an instance's profile; the stats are written
    within `settle_s`, before the bench's next phase starts."""
    assert inst.proc is not None
    inst.proc.send_signal(sig)
    time.sleep(settle_s)


def script_names() -> dict[bytes, str]:
    """The file name of every script the service and the index run, by SHA."""
    names: dict[bytes, str] = {}
    for package in ("dispatch.adapters.lua", "geoindex.lua"):
        for entry in resources.files(package).iterdir():
            if entry.name.endswith(".lua"):
                s = Script(entry.name.removesuffix(".lua"), package=package)
                names[s.sha.encode()] = s.name
    # Scripts put together from others' sources (the driver's with the index's change, the
    # Idempotency-Key's claim with the rider's admission).
    for s in (*DRIVER_SCRIPTS, *IDEMPOTENCY_SCRIPTS):
        names[s.sha.encode()] = s.name
    return names


def label(packed: bytes | str | Iterable[bytes], scripts: dict[bytes, str]) -> str:
    """`EVALSHA ride_put`, `HGET`, `+ZADD` (a pipeline opening with ZADD), from the bytes
    a connection is about to send (RESP arrays: *n, then $len and each argument)."""
    raw = packed.encode() if isinstance(packed, str) else packed
    data = raw if isinstance(raw, bytes) else b"".join(raw)
    parts = data.split(b"\r\n", 5)
    if len(parts) < 4:
        return "?"
    name = parts[2].upper()
    text = name.decode(errors="replace")
    if name == b"EVALSHA" and len(parts) > 4:
        text += " " + scripts.get(parts[4], "?")
    rest = data[len(b"\r\n".join(parts[:3])) :]
    return ("+" if b"\r\n*" in rest else "") + text


class RoundTrips:
    """Counts writes to Redis connections while on (a patch of redis-py's one send, and
    of the batch path's one send per node)."""

    def __init__(self) -> None:
        self.on = False
        self.counts: Counter[str] = Counter()
        self._scripts = script_names()
        original = AbstractConnection.send_packed_command
        trips = self

        async def counted(
            conn: AbstractConnection, command: Any, check_health: bool = True
        ) -> None:
            if trips.on:
                trips.counts[label(command, trips._scripts)] += 1
            await original(conn, command, check_health)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign,assignment]
        original_batch = Pipelined._send

        async def counted_batch(
            pipelined: Pipelined,
            node: Any,
            indices: list[int],
            packed: list[bytes],
            replies: list[Any],
        ) -> None:
            if trips.on:
                name = label(packed[0], trips._scripts)
                trips.counts[("+" if len(packed) > 1 else "") + name] += 1
            await original_batch(pipelined, node, indices, packed, replies)

        Pipelined._send = counted_batch  # type: ignore[method-assign,assignment]

    def start(self) -> None:
        self.counts.clear()
        self.on = True

    def stop(self, out: str) -> None:
        self.on = False
        total = sum(self.counts.values())
        body = {"round_trips": total, "by_call": dict(self.counts.most_common())}
        with open(out, "wb") as f:
            f.write(orjson.dumps(body, option=orjson.OPT_INDENT_2))


def calls_path(out: str) -> str:
    """Where the round trips of a run writing OUT go."""
    return out if out.endswith(".json") else out + ".calls.json"


def run(out: str, argv: list[str]) -> int:
    prof = cProfile.Profile()
    trips = RoundTrips()

    cpu = not out.endswith(".json")

    def start(signum: int, frame: FrameType | None) -> None:
        trips.start()
        if cpu:
            prof.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        if cpu:
            prof.disable()
            prof.dump_stats(out)
        trips.stop(calls_path(out))

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    return main(argv)


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1], sys.argv[2:]))
