"""A partition that keeps both sides up: three instances behind nginx on one Redis, one of
them reaching Redis through its own fault proxy, which then black-holes (connections stay
open and silent, as in a real partition, not a clean refusal) under a small ride and
location load (WebSocket drivers, riders with Idempotency-Keys), while the other two keep
Redis.

- the cut-off instance answers 503 backend_unavailable within its request deadline, and
  its /readyz turns 503;
- nginx routes around it: its 503s to GETs and keyed POSTs are re-sent to another
  instance and count towards max_fails, after which it gets no new work (read from
  nginx's own access log);
- its WebSocket drivers are closed with 1013 (try again later: reconnect elsewhere) and
  reconnect through nginx to a healthy instance;
- no double assignment, no acknowledged ride lost.

A single Redis, not a Cluster: a client of a Cluster follows its redirects to the nodes'
own addresses, past any proxy put in front of one of them."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
import pytest
from redis.asyncio import Redis

from loadtest.faultproxy import FaultProxy
from loadtest.instances import DispatchInstance, instance_env
from loadtest.nginx_proc import NginxProcess, nginx_available
from loadtest.redis_procs import free_port

from .conftest import BERLIN, Client, record_figure
from .redis_state import load_state
from .stack_load import Book, check_rides, driver, go_online, rider

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.nginx,
    pytest.mark.skipif(not nginx_available(), reason="nginx is not installed"),
]

SECRET = "partition-secret-0123456789-0123456789-ab"
DRIVERS, RIDERS = 12, 8
REDIS_TIMEOUT_S = 0.5  # DISPATCH_REDIS_TIMEOUT_S
REQUEST_TIMEOUT_S = 1.0  # DISPATCH_REQUEST_TIMEOUT_S: the deadline of one HTTP request
# A request cut at its deadline may still spend 0.25 s on its clean-ups (giving up its
# Idempotency-Key, its reservation); then scheduling slack on a busy 2-core machine.
FAIL_WITHIN_S = REQUEST_TIMEOUT_S + 0.25 + 0.5
READY_WITHIN_S = REDIS_TIMEOUT_S / 2 + 0.5
OFFER_TIMEOUT_S = 2.0
CUT_AT_S, LOAD_S = 3.0, 12.0
ROUTED_AROUND_AFTER_S = 2.0  # nginx has counted its failures by then
# nginx's access log (the template's `upstream` format): time, path, status, instances tried.
_LOG = re.compile(
    r"\[(?P<time>[^\]]+)\] \"(?P<method>\S+) (?P<path>\S+) [^\"]*\" (?P<status>\d{3}) .*"
    r"rt=(?P<rt>\S+) ua=(?P<ua>.*?) us=(?P<us>.*?) uct=.* inst=(?P<inst>\S+)"
)


@dataclass
class Partitioned:
    client: Client  # through nginx
    victim: Client  # straight to the instance that will lose Redis
    victim_addr: str
    proxy: FaultProxy
    nginx: NginxProcess
    redis_url: str


@pytest.fixture
async def partitioned(redis_url: str, tmp_path: Path) -> AsyncIterator[Partitioned]:
    port = urlparse(redis_url).port
    assert port is not None
    async with FaultProxy(port) as proxy, aiohttp.ClientSession() as http:
        instances = []
        for i in range(3):
            env = instance_env(free_port(), f"p{i}", SECRET) | {
                # The first instance reaches Redis only through the proxy.
                "DISPATCH_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0" if i == 0 else redis_url,
                "DISPATCH_REDIS_TIMEOUT_S": str(REDIS_TIMEOUT_S),
                "DISPATCH_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
                "DISPATCH_OFFER_TIMEOUT_S": str(OFFER_TIMEOUT_S),
            }
            instances.append(DispatchInstance(env, tmp_path / f"p{i}.log"))
        (tmp_path / "nginx").mkdir()
        upstreams = [f"127.0.0.1:{i.port}" for i in instances]
        nginx = NginxProcess(upstreams, free_port(), run_dir=tmp_path / "nginx")
        try:
            for inst in instances:
                inst.start()
            for inst in instances:
                await asyncio.to_thread(inst.wait_ready)
            await asyncio.to_thread(nginx.start)
            yield Partitioned(
                client=Client(nginx.url, SECRET, http),
                victim=Client(instances[0].url, SECRET, http),
                victim_addr=f"127.0.0.1:{instances[0].port}",
                proxy=proxy,
                nginx=nginx,
                redis_url=redis_url,
            )
        finally:
            await asyncio.to_thread(nginx.stop)
            proxy.heal()  # so the instance's own shutdown is not held by the black hole
            for inst in instances:
                await asyncio.to_thread(inst.stop)


def access_log(nginx: NginxProcess) -> list[dict[str, Any]]:
    lines = []
    for line in nginx.access_log.read_text(errors="replace").splitlines():
        m = _LOG.search(line)
        if m:
            row: dict[str, Any] = m.groupdict()
            # Logged when it ends (a WebSocket: when it closes); when it began:
            ended = datetime.strptime(row["time"], "%d/%b/%Y:%H:%M:%S %z").timestamp()
            row["t"] = ended - float(row["rt"])
            lines.append(row)
    return lines


async def direct_calls(victim: Client) -> list[Any]:
    """What the cut-off instance itself answers: a ride request (keyed and not), a read,
    a fix; each must be a 503 within the request deadline."""
    return list(
        await asyncio.gather(
            victim.call("POST", "/v1/rides", "rider:pz", json={"pickup": BERLIN}),
            victim.call(
                "POST",
                "/v1/rides",
                "rider:pk",
                json={"pickup": BERLIN},
                headers={"Idempotency-Key": "partition-direct"},
            ),
            victim.call("GET", "/v1/drivers/dr1", "driver:dr1"),
            victim.fix("dr1", BERLIN["lat"], BERLIN["lng"], int(time.time() * 1000)),
        )
    )


async def test_an_instance_cut_off_from_redis_answers_503_is_routed_around_and_its_drivers_move(
    partitioned: Partitioned,
) -> None:
    p = partitioned
    book = Book()
    stop = asyncio.Event()
    await go_online(p.client, DRIVERS)
    tasks = [asyncio.create_task(driver(p.client, book, n, stop)) for n in range(DRIVERS)]
    await asyncio.sleep(1.0)
    tasks += [asyncio.create_task(rider(p.client, book, n, stop)) for n in range(RIDERS)]
    await asyncio.sleep(CUT_AT_S)

    p.proxy.blackhole()
    cut_at, cut_wall = time.monotonic(), time.time()
    ready = await p.victim.call("GET", "/readyz", timeout=5)
    direct = await direct_calls(p.victim)
    await asyncio.sleep(LOAD_S - CUT_AT_S)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 20)
    await asyncio.sleep(OFFER_TIMEOUT_S + 5.0)  # offers made before the cut run out

    # Still partitioned: what the healthy side stored is the truth.
    raw = Redis.from_url(p.redis_url)
    try:
        rides, drivers = await load_state(raw)
    finally:
        await raw.aclose()
    report = check_rides(book, rides, drivers, leased_ok=True)

    assert ready.status == 503 and ready.body["error"] == "backend_unavailable"
    assert ready.elapsed_s < READY_WITHIN_S
    for reply in direct:
        assert reply.status == 503 and reply.body["error"] == "backend_unavailable", reply.body
    slowest = max(r.elapsed_s for r in direct)
    assert slowest < FAIL_WITHIN_S

    # Errors seen through nginx: only the 503s of unkeyed POSTs (a driver's ride steps,
    # never re-sent), no 502 or 504, and all around the cut.
    after_cut = [(t - cut_at, what) for t, what in book.errors]
    assert all(what.startswith("503 ") for _, what in after_cut), book.errors
    assert all(t >= -0.1 for t, _ in after_cut), book.errors

    # Drivers on the cut-off instance were told to reconnect elsewhere, and did.
    told = [t - cut_at for t, code in book.drops if code == 1013]
    assert told, book.drops
    assert all(code == 1013 for t, code in book.drops if t >= cut_at), book.drops
    assert len(book.reconnects) >= len(told)
    assert max(book.reconnects) < 3.0

    # nginx, from its own log (flushed once it stops): before the cut the victim served
    # its share; some time after it, no request and no socket landed there.
    await asyncio.to_thread(p.nginx.stop)
    log = access_log(p.nginx)
    # (Times to the second, as nginx logs them.)
    before = [r for r in log if r["t"] < cut_wall - 1]
    routed = [r for r in log if r["t"] >= cut_wall + 1 + ROUTED_AROUND_AFTER_S]
    sockets_before = [r for r in before if r["status"] == "101" and r["inst"] == "p0"]
    assert sockets_before, "no WebSocket on the victim before the cut"
    share_before = sum(r["inst"] == "p0" for r in before) / len(before)
    tried_after = [r for r in routed if p.victim_addr in r["ua"]]
    retried = [r for r in log if r["t"] >= cut_wall - 1 and p.victim_addr + ", " in r["ua"]]
    moved = [
        r for r in log if r["t"] >= cut_wall - 1 and r["status"] == "101" and r["inst"] != "p0"
    ]
    assert share_before > 0.15
    assert routed and len(tried_after) / len(routed) < 0.05, tried_after
    assert not [r for r in routed if r["status"] == "101" and r["inst"] == "p0"]
    assert len(moved) >= len(told)

    record_figure(
        "partition_one_of_three",
        http_calls=book.calls,
        errors_through_nginx=len(book.errors),
        error_window_s=round(max((t for t, _ in after_cut), default=0.0), 3),
        slowest_direct_503_s=round(slowest, 3),
        readyz_503_s=round(ready.elapsed_s, 3),
        sockets_closed_1013=len(told),
        reconnect_worst_s=round(max(book.reconnects), 3),
        victim_share_before=round(share_before, 3),
        victim_share_after=round(len(tried_after) / len(routed), 3),
        requests_resent_by_nginx=len(retried),
        rides=len(book.rides),
        committed_rides=report["committed"],
        drivers_held_by_lease=report["held_by_lease"],
    )
