"""`dispatch demo`: start the service on the embedded backend on a free port, create the
city's areas (a service area, a no-pickup forecourt, an airport with its queue) with an
ops token, run simulated drivers and riders against its real HTTP/WebSocket API, show a
live progress line, stop after `duration` seconds or Ctrl-C, and print a summary."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import sys
import time
from dataclasses import replace

import aiohttp

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.demo.areas import AIRPORT_DRIVER_SHARE, airport_point, create_areas
from dispatch.demo.city import City
from dispatch.demo.products import assign_vehicles
from dispatch.demo.sim_driver import SimDriver
from dispatch.demo.sim_rider import ride_once
from dispatch.demo.stats import Stats
from dispatch.domain.principals import Principal, Role
from dispatch.entrypoints.ops_feed import FEED, OpsFeed
from dispatch.entrypoints.server import start
from dispatch.settings import Settings

OFFER_TIMEOUT_S = 5.0  # shorter than the service default so ignored offers move on in time


async def _riders(
    base: str, tokens: TokenCodec, session: aiohttp.ClientSession, city: City,
    rng: random.Random, stats: Stats, rate: float, stop: asyncio.Event,
) -> None:  # fmt: skip
    running: set[asyncio.Task[None]] = set()
    n = 0
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.expovariate(rate))
            if stop.is_set():
                break
            n += 1
            token = tokens.issue(Principal(Role.RIDER, f"rider{n}"), 3600)
            task = asyncio.create_task(ride_once(base, token, session, city, rng, stats))
            running.add(task)
            task.add_done_callback(running.discard)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def _progress(stats: Stats, duration: float, drivers: int, stop: asyncio.Event) -> None:
    started = time.monotonic()
    tty = sys.stderr.isatty()
    last_line = 0.0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
        elapsed = time.monotonic() - started
        line = stats.progress(min(elapsed, duration), duration, drivers)
        if tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif elapsed - last_line >= 5:
            print(line, file=sys.stderr, flush=True)
            last_line = elapsed
    if tty:
        print(file=sys.stderr)


async def while_watched(
    feed: OpsFeed, stop: asyncio.Event, grace_s: float = 5.0, poll_s: float = 1.0
) -> None:
    """Until no ops map page has been open for grace_s (a reload reconnects meanwhile)."""
    unwatched_s = 0.0
    while not stop.is_set() and unwatched_s < grace_s:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_s)
        unwatched_s = 0.0 if feed.watching else unwatched_s + poll_s


async def run_demo(
    duration: float,
    drivers: int,
    riders_per_s: float,
    seed: int,
    keep_running: bool = False,
    match_window_ms: int | None = None,  # None: the service's default
) -> int:
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("dispatch").setLevel(logging.WARNING)
    settings = Settings(port=0, instance_id="demo", offer_timeout_s=OFFER_TIMEOUT_S)
    if match_window_ms is not None:
        settings = replace(settings, match_window_ms=match_window_ms)
    runner, port = await start(settings)
    base = f"http://127.0.0.1:{port}"
    print(
        f"dispatch demo: service on {base} (embedded backend); {drivers} drivers, "
        f"{riders_per_s:g} ride requests/s for {duration:g} s; Ctrl-C stops early",
        file=sys.stderr,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    rng, city, stats = random.Random(seed), City(), Stats()
    if settings.match_window_ms:
        stats.matching = f"batched, {settings.match_window_ms} ms windows"
    print(f"dispatch demo: matching {stats.matching}", file=sys.stderr)
    tokens = TokenCodec(settings.jwt_secret)
    # The token rides in the fragment, which the browser never sends nor logs.
    ops_token = tokens.issue(Principal(Role.OPS, "demo"), int(duration) + 3600)
    print(f"dispatch demo: live ops map at {base}/ops#token={ops_token}", file=sys.stderr)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    await create_areas(session, base, ops_token)
    sims = [
        SimDriver(
            f"drv{i:03d}",
            base,
            tokens.issue(Principal(Role.DRIVER, f"drv{i:03d}"), 3600),
            session,
            city,
            random.Random(rng.random()),
            stats,
        )
        for i in range(drivers)
    ]
    fleet_token = tokens.issue(Principal(Role.FLEET, "demo"), 3600)
    await assign_vehicles(session, base, fleet_token, [d.id for d in sims], rng)
    for d in sims[: round(drivers * AIRPORT_DRIVER_SHARE)]:
        d.home = d.pos = d.target = airport_point(d.rng)  # a taxi rank: they start there
    tasks = [asyncio.create_task(d.run(stop)) for d in sims]
    await asyncio.sleep(1.5)  # let the first positions arrive before riders ask
    tasks.append(
        asyncio.create_task(_riders(base, tokens, session, city, rng, stats, riders_per_s, stop))
    )
    tasks.append(asyncio.create_task(_progress(stats, duration, drivers, stop)))
    started = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration)
    if keep_running:
        print("dispatch demo: the city keeps running while the ops map is open", file=sys.stderr)
        await while_watched(runner.app[FEED], stop)
    stop.set()
    elapsed = time.monotonic() - started
    ran_for = elapsed if keep_running else min(duration, elapsed)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    stats.errors += sum(isinstance(r, Exception) for r in results)
    await session.close()
    await runner.cleanup()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)
    print(stats.summary(ran_for, drivers, riders_per_s))
    return 0
