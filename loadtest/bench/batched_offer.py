"""Request-to-offer latency in batched mode, through a real instance on Redis.

    python -m loadtest.bench.batched_offer [--window-ms 2000] [--rates 25,50,100]
                                           [--seconds 20] [--drivers 5000] [--profile PATH]

One dispatch process (DISPATCH_MATCH_WINDOW_MS=--window-ms) on one redis-server, both
started here on free ports; --drivers drivers loaded through the fleet batch endpoint
(TTL raised so they stay online). Then, per rate, ride requests at that rate (open loop,
each timed from when it was due, new riders every time) with `Prefer: wait=10`: the
answer comes once the ride's window has offered it, so the time to an `offered` answer is
the rider's request-to-offer. Target: p99 ≤ window + 100 ms. Beside it, from the instance's
/metrics, the windows' own wall time (queue read to last offer out): what a rider who just
missed a window waits on top of the next one, and the instance's CPU per request. With
--profile the instance runs under cProfile (loadtest/bench/profiled.py), switched on for
the last rate only. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import time
import zlib
from typing import Any

import aiohttp
import numpy as np
import orjson

from loadtest.bench.harness import Servers, cpu_seconds, machine
from loadtest.bench.profiled import switch
from loadtest.redis_procs import RedisServer
from loadtest.scenario.city import City
from loadtest.scenario.tokens import mint


async def load_drivers(url: str, secret: str, n: int, rng: random.Random) -> None:
    city = City()
    headers = {"Authorization": f"Bearer {mint('fleet', 'bench', secret)}"}
    ts = int(time.time() * 1000)
    async with aiohttp.ClientSession() as s:
        for start in range(0, n, 1000):
            updates = []
            for i in range(start, min(n, start + 1000)):
                lat, lng = city.uniform_point(rng)
                updates.append({"driver_id": f"d{i}", "lat": lat, "lng": lng, "ts": ts, "seq": 1})
            async with s.post(
                f"{url}/v1/locations", json={"updates": updates}, headers=headers
            ) as r:
                assert r.status == 200, await r.text()


async def window_histogram(url: str) -> dict[str, float]:
    """The instance's dispatch_match_window_seconds: cumulative counts by bucket, _sum and
    _count (windows that offered rides: from reading the queue to the last offer out)."""
    async with aiohttp.ClientSession() as s, s.get(f"{url}/metrics") as r:
        text = await r.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("dispatch_match_window_seconds"):
            name, value = line.rsplit(" ", 1)
            out[name.removeprefix("dispatch_match_window_seconds")] = float(value)
        elif line.startswith(("dispatch_match_window_riders_total", "dispatch_match_window_ref")):
            name, value = line.rsplit(" ", 1)
            out[name.removeprefix("dispatch_match_window_")] = float(value)
    return out


def window_times(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """The windows of one run: how many, their mean, and the bucket their 99th percentile
    falls in (an upper bound)."""
    d = {k: v - before.get(k, 0.0) for k, v in after.items()}
    n = d.get("_count", 0.0)
    if not n:
        return {"windows": 0}
    buckets = sorted((float(k.split('"')[1]), v) for k, v in d.items() if k.startswith("_bucket"))
    p99 = next(le for le, c in buckets if c >= 0.99 * n)
    counts = {
        k.removeprefix("riders_total").replace('{outcome="', "riders_").rstrip('"}'): int(v)
        for k, v in d.items()
        if k.startswith(("riders_total", "refused_total")) and v
    }
    return {
        **counts,
        "windows": int(n),
        "window_ms_mean": round(d["_sum"] / n * 1000, 1),
        "window_ms_p99_at_most": p99 * 1000,
    }


async def run_rate(
    url: str, secret: str, rate: float, seconds: float, tag: str, window_ms: float
) -> dict[str, Any]:
    # Seeded by the tag's bytes, not hash(tag): str hashes change from process to process,
    # which gave every run different riders.
    city, rng = City(), random.Random(zlib.crc32(tag.encode()))
    n = int(rate * seconds)
    latencies: list[float] = []
    # Per offered ride, where its time went (the ride's own stamps, wall clock of this
    # machine): due -> stored (the request path), stored -> its window's start (waiting
    # for the window), the window's start -> answered (the window's work and the wake-up).
    parts: list[tuple[float, float, float]] = []
    statuses: dict[str, int] = {}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        start = time.perf_counter()

        async def one(i: int) -> None:
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            lat, lng = city.demand_point(rng)
            headers = {
                "Authorization": f"Bearer {mint('rider', f'{tag}-{i}', secret)}",
                "Prefer": "wait=10",
            }
            body = {"pickup": {"lat": lat, "lng": lng}}
            try:
                async with s.post(f"{url}/v1/rides", json=body, headers=headers) as r:
                    data = orjson.loads(await r.read())
                status = data.get("status", str(r.status))
            except TimeoutError:
                status = "client_timeout"  # the instance could not keep up
            statuses[status] = statuses.get(status, 0) + 1
            if status == "offered":
                now = time.perf_counter()
                latencies.append((now - due) * 1000)
                wall_due = time.time() * 1000 - (now - due) * 1000
                answered = time.time() * 1000
                parts.append(
                    (
                        data["created_at"] - wall_due,
                        data["updated_at"] - data["created_at"],
                        answered - data["updated_at"],
                    )
                )

        await asyncio.gather(*(one(i) for i in range(n)))
    ms = np.array(latencies) if latencies else np.array([float("nan")])
    return {
        "rate_per_s": rate,
        "requests": n,
        "statuses": statuses,
        "offer_ms_p50": round(float(np.percentile(ms, 50)), 1),
        "offer_ms_p99": round(float(np.percentile(ms, 99)), 1),
        "offer_ms_max": round(float(ms.max()), 1),
        **_breakdown(parts, window_ms),
    }


def _breakdown(parts: list[tuple[float, float, float]], window_ms: float) -> dict[str, Any]:
    """p50 and p99 of each part of request-to-offer (see run_rate), and how many rides
    were stored more than 1.25 windows before the window that offered them (a window
    passed them over: not read yet, or carried; the rounds' own jitter stays below)."""
    if not parts:
        return {}
    a = np.array(parts)
    out: dict[str, Any] = {}
    for col, name in enumerate(("stored", "to_window", "window_to_answer")):
        out[f"{name}_ms_p50"] = round(float(np.percentile(a[:, col], 50)), 1)
        out[f"{name}_ms_p99"] = round(float(np.percentile(a[:, col], 99)), 1)
    out["passed_over"] = int((a[:, 1] > 1.25 * window_ms).sum())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--window-ms", type=int, default=2000)
    p.add_argument("--rates", default="25,50,100")
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--drivers", type=int, default=5000)
    p.add_argument("--profile", metavar="PATH", help="cProfile the last rate into PATH")
    args = p.parse_args(argv)
    out: dict[str, Any] = {"machine": machine(), "window_ms": args.window_ms, "runs": []}
    rates = [float(r) for r in args.rates.split(",")]
    with RedisServer(tie_to_parent=True) as redis, Servers() as servers:
        inst = servers.dispatch(
            "batched",
            {"DISPATCH_REDIS_URL": redis.url},
            {"DISPATCH_MATCH_WINDOW_MS": str(args.window_ms), "DISPATCH_DRIVER_TTL_S": "3600"},
            profile=args.profile,
        )
        assert inst.proc is not None
        asyncio.run(load_drivers(inst.url, servers.secret, args.drivers, random.Random(1)))
        for i, rate in enumerate(rates):
            profiled = args.profile and i == len(rates) - 1
            if profiled:
                switch(inst, signal.SIGUSR1)
            before = asyncio.run(window_histogram(inst.url))
            cpu = cpu_seconds(inst.proc.pid)
            run = asyncio.run(
                run_rate(inst.url, servers.secret, rate, args.seconds, f"r{rate:g}", args.window_ms)
            )
            cpu = cpu_seconds(inst.proc.pid) - cpu
            if profiled:
                switch(inst, signal.SIGUSR2, 0.5)
            run.update(window_times(before, asyncio.run(window_histogram(inst.url))))
            run["instance_cpu_ms_per_request"] = round(cpu * 1000 / run["requests"], 2)
            run["target_p99_ms"] = args.window_ms + 100
            out["runs"].append(run)
            sys.stderr.write(orjson.dumps(run).decode() + "\n")
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
