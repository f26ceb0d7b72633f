"""An asyncio + aiohttp load generator, run in its own process; prints one JSON line.

    python -m loadtest.bench.loadgen http-location --url U --secret S --seconds 10 -c 64
    python -m loadtest.bench.loadgen ws-location ...     # one WebSocket per driver
    python -m loadtest.bench.loadgen seed --drivers 100000  # fleet batches, as fast as it can
    python -m loadtest.bench.loadgen fleet --rate 5000      # background updates, open loop
    python -m loadtest.bench.loadgen rides --rate 100       # ride requests, open loop
    python -m loadtest.bench.loadgen market --rate 5        # ops market reads, open loop

Open-loop modes time each request from when it was due, not from when it was sent, so a
stalled server shows up in the percentiles instead of slowing the generator down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from typing import Any

import aiohttp
import numpy as np
import orjson
import uvloop

from loadtest.scenario.city import City
from loadtest.scenario.tokens import mint

CITY = City()


class Recorder:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.started = time.perf_counter()
        self.ended: float | None = None  # when the timed part ended, if not at the return

    def add(self, seconds: float, status: str) -> None:
        self.latencies.append(seconds)
        self.statuses[status] += 1

    def summary(self, elapsed: float) -> dict[str, Any]:
        lat = np.array(self.latencies) * 1e3 if self.latencies else np.zeros(1)
        return {
            "count": len(self.latencies),
            "per_s": round(len(self.latencies) / elapsed, 1),
            "statuses": dict(self.statuses),
            "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p90_ms": round(float(np.percentile(lat, 90)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "max_ms": round(float(lat.max()), 2),
        }


def _fix(seq: int, rng: random.Random, ts: int | None = None) -> dict[str, Any]:
    lat, lng = CITY.uniform_point(rng)
    return {"lat": lat, "lng": lng, "ts": ts or int(time.time() * 1000), "seq": seq}


async def http_location(a: argparse.Namespace, rec: Recorder) -> None:
    drivers = [f"{a.prefix}{i}" for i in range(a.drivers)]
    headers = {d: {"Authorization": f"Bearer {mint('driver', d, a.secret)}"} for d in drivers}
    deadline = time.perf_counter() + a.seconds

    async def worker(w: int, s: aiohttp.ClientSession) -> None:
        rng = random.Random(w)
        mine = drivers[w :: a.concurrency]
        n = 0
        while time.perf_counter() < deadline:
            d = mine[n % len(mine)]
            n += 1
            t0 = time.perf_counter()
            async with s.post(
                f"{a.url}/v1/drivers/{d}/location", data=orjson.dumps(_fix(n, rng)),
                headers={**headers[d], "Content-Type": "application/json"},
            ) as r:  # fmt: skip
                await r.read()
                rec.add(time.perf_counter() - t0, str(r.status))

    conn = aiohttp.TCPConnector(limit=a.concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:
        await asyncio.gather(*(worker(w, s) for w in range(a.concurrency)))


async def ws_location(a: argparse.Namespace, rec: Recorder) -> None:
    """One WebSocket per driver; each keeps --window frames in flight and counts the acks.
    --fixes N > 1: each frame is a `locations` frame of N buffered fixes (count: frames).
    Every socket is open before the timed part starts, and the lines {"phase": "steady"}
    and {"phase": "end"} mark it on stdout, so a bench can read the server's CPU over the
    steady part alone (1,000 handshakes and subscriptions are not location updates)."""
    connected, steady = 0, asyncio.Event()
    deadline = 0.0
    # A few handshakes at a time: an instance refuses an upgrade whose backend ping is
    # slow (503), which 1,000 at once on a busy machine would make it; a refused one is
    # tried again.
    opening = asyncio.Semaphore(32)

    async def driver(w: int, s: aiohttp.ClientSession) -> None:
        nonlocal connected, deadline
        d = f"{a.prefix}{w}"
        rng = random.Random(w)
        url = f"{a.url.replace('http', 'ws', 1)}/v1/drivers/{d}/stream"
        hdr = {"Authorization": f"Bearer {mint('driver', d, a.secret)}"}
        async with opening:
            for _ in range(20):
                try:
                    ws = await s.ws_connect(url, headers=hdr, max_msg_size=0)
                    break
                except aiohttp.WSServerHandshakeError as exc:
                    if exc.status != 503:
                        raise
                    rec.statuses["upgrade-503"] += 1  # as an app would: again, shortly
                    await asyncio.sleep(0.2)
            else:
                raise RuntimeError(f"{d}: every upgrade refused with 503")
        async with ws:
            sent: dict[int, float] = {}
            seq = last_ts = 0
            window = asyncio.Semaphore(a.window)

            async def reader() -> None:
                async for msg in ws:
                    m = orjson.loads(msg.data)
                    if m.get("type") == "ack" and m.get("seq") in sent:
                        rec.add(time.perf_counter() - sent.pop(m["seq"]), m.get("status", "?"))
                        window.release()
                    elif m.get("type") == "error":
                        rec.statuses[f"error:{m.get('error')}"] += 1
                        window.release()  # that fix is answered, if not acked

            connected += 1
            if connected == a.concurrency:
                print(json.dumps({"phase": "steady"}), flush=True)
                rec.started = time.perf_counter()
                deadline = rec.started + a.seconds
                steady.set()
            await steady.wait()
            task = asyncio.create_task(reader())
            while time.perf_counter() < deadline and not task.done():
                try:
                    await asyncio.wait_for(window.acquire(), timeout=5)
                except TimeoutError:
                    rec.statuses["ack-timeout"] += 1
                    break
                fixes = []
                for _ in range(a.fixes):
                    seq += 1
                    # A fix must be newer in ts too: several can leave within one millisecond.
                    last_ts = max(int(time.time() * 1000), last_ts + 1)
                    fixes.append(_fix(seq, rng, last_ts))
                sent[seq] = time.perf_counter()  # a frame is acked with its newest fix's seq
                if a.fixes == 1:
                    frame = {"type": "location", **fixes[0]}
                else:
                    frame = {"type": "locations", "fixes": fixes}
                await ws.send_str(orjson.dumps(frame).decode())
            await asyncio.sleep(0.2)  # the last acks
            task.cancel()
            if rec.ended is None:
                rec.ended = time.perf_counter()
                print(json.dumps({"phase": "end"}), flush=True)

    # No connection limit: each socket holds its connection for the whole run.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        await asyncio.gather(*(driver(w, s) for w in range(a.concurrency)))


async def _fleet_batches(
    a: argparse.Namespace, s: aiohttp.ClientSession, rec: Recorder, total: int | None
) -> None:
    hdr = {"Authorization": f"Bearer {mint('fleet', 'bench', a.secret)}"}
    hdr["Content-Type"] = "application/json"
    rng = random.Random(1)
    cursor = 0
    batches_per_s = a.rate / a.batch if a.rate else 0.0
    start = time.perf_counter()
    deadline = start + a.seconds
    sent = 0
    inflight: set[asyncio.Task[None]] = set()

    async def post(body: bytes, due: float) -> None:
        async with s.post(f"{a.url}/v1/locations", data=body, headers=hdr) as r:
            payload = await r.read()
            status = str(r.status)
            if r.status == 200:
                res = orjson.loads(payload)["results"]
                accepted = all(x["status"] == "accepted" for x in res)
                status = "ok" if accepted else "some-not-accepted"
            rec.add(time.perf_counter() - due, status)

    issued = 0
    while (total is None and time.perf_counter() < deadline) or (
        total is not None and sent < total
    ):
        due = start + issued / batches_per_s if batches_per_s else time.perf_counter()
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        issued += 1
        updates = []
        for _ in range(a.batch if total is None else min(a.batch, total - sent)):
            i = cursor % a.drivers
            cursor += 1
            # The clock as seq: later runs over the same drivers (seed, then background)
            # stay in order; one driver comes round again only after all the others.
            updates.append({"driver_id": f"{a.prefix}{i}", **_fix(int(time.time() * 1e3), rng)})
        sent += len(updates)
        task = asyncio.create_task(post(orjson.dumps({"updates": updates}), due))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
        while len(inflight) >= a.concurrency:
            await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*inflight)


async def fleet(a: argparse.Namespace, rec: Recorder) -> None:
    async with aiohttp.ClientSession() as s:
        await _fleet_batches(a, s, rec, None)


async def seed(a: argparse.Namespace, rec: Recorder) -> None:
    a.rate = 0
    async with aiohttp.ClientSession() as s:
        await _fleet_batches(a, s, rec, a.drivers)


async def rides(a: argparse.Namespace, rec: Recorder) -> None:
    rng = random.Random(7)
    start = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()

    async def one(n: int, due: float, s: aiohttp.ClientSession) -> None:
        rider = f"{a.prefix}r{n}"
        lat, lng = CITY.demand_point(rng)
        hdr = {
            "Authorization": f"Bearer {mint('rider', rider, a.secret)}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"{rider}-1",
        }
        body = orjson.dumps({"pickup": {"lat": lat, "lng": lng}})
        async with s.post(f"{a.url}/v1/rides", data=body, headers=hdr) as r:
            payload = await r.read()
            ok = r.status == 201
            status = orjson.loads(payload).get("status", "?") if ok else str(r.status)
            rec.add(time.perf_counter() - due, status)

    conn = aiohttp.TCPConnector(limit=a.concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:
        n = 0
        while True:
            due = start + n / a.rate
            if due - start >= a.seconds:
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            task = asyncio.create_task(one(n, due, s))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        await asyncio.gather(*tasks)


async def market(a: argparse.Namespace, rec: Recorder) -> None:
    """GET /v1/market around the city centre (radius --radius-m), as an ops map would."""
    start = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()
    hdr = {"Authorization": f"Bearer {mint('ops', f'{a.prefix}ops', a.secret)}"}
    url = f"{a.url}/v1/market?lat={CITY.lat}&lng={CITY.lng}&radius_m={a.radius_m}"
    if a.path:  # the same reads of another path: a baseline such as /healthz
        url = a.url + a.path

    async def one(due: float, s: aiohttp.ClientSession) -> None:
        async with s.get(url, headers=hdr) as r:
            await r.read()
            rec.add(time.perf_counter() - due, str(r.status))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=a.concurrency)) as s:
        n = 0
        while (due := start + n / a.rate) - start < a.seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            task = asyncio.create_task(one(due, s))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        await asyncio.gather(*tasks)


MODES = {
    "http-location": http_location,
    "ws-location": ws_location,
    "fleet": fleet,
    "seed": seed,
    "rides": rides,
    "market": market,
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.loadgen")
    p.add_argument("mode", choices=sorted(MODES))
    p.add_argument("--url", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("-c", "--concurrency", type=int, default=64)
    p.add_argument("--drivers", type=int, default=2000)
    p.add_argument("--prefix", default="b")
    p.add_argument("--window", type=int, default=1, help="ws: frames in flight per socket")
    p.add_argument("--fixes", type=int, default=1, help="ws: fixes per frame")
    p.add_argument("--rate", type=float, default=100.0, help="per second (fleet: updates)")
    p.add_argument("--batch", type=int, default=1000, help="fleet: updates per request")
    p.add_argument("--radius-m", type=float, default=2000.0, help="market: the area read")
    p.add_argument("--path", help="market: read this path instead (a baseline)")
    a = p.parse_args(argv)
    rec = Recorder()
    uvloop.install()
    asyncio.run(MODES[a.mode](a, rec))
    out = {"mode": a.mode, **rec.summary((rec.ended or time.perf_counter()) - rec.started)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
