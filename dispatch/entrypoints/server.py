"""Run the app until SIGTERM or SIGINT, then shut down gracefully: stop accepting, close
WebSockets with 1001, let requests in flight finish, then close the backend."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable

from aiohttp import web

from dispatch.entrypoints.app import create_app
from dispatch.entrypoints.parse_errors import JsonErrorAppRunner
from dispatch.settings import Settings

log = logging.getLogger(__name__)
# The cycle collector's youngest generation is collected every this many net allocations
# (CPython's default: 700). Every request and frame allocates, and each collection walks
# what is alive at that moment (the frames and futures of every request in flight),
# promoting it to older generations that are walked again later: with the default, about
# a quarter of an instance's CPU on 1,000 busy driver sockets was the collector's (perf).
GC_YOUNG_THRESHOLD = 10_000


def settle_gc() -> None:
    """Once started: what start-up built (modules, the app, compiled tables) is kept out
    of every later collection (gc.freeze), and the young generation collected less often
    (GC_YOUNG_THRESHOLD). Cycles are still collected, later."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


async def start(settings: Settings) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (for cleanup) and the port actually bound."""
    runner = JsonErrorAppRunner(
        create_app(settings),
        handle_signals=False,
        shutdown_timeout=settings.shutdown_timeout_s,
        access_log=None,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = settings.port
    for address in runner.addresses:
        if isinstance(address, tuple):
            port = int(address[1])
            break
    return runner, port


async def serve(settings: Settings, on_ready: Callable[[int], None] | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner, port = await start(settings)
    settle_gc()
    if on_ready is not None:
        on_ready(port)
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        # The handlers stay until the loop closes: a second SIGTERM during shutdown must
        # not kill the process halfway through.
        await runner.cleanup()


def announce(settings: Settings) -> Callable[[int], None]:
    def ready(port: int) -> None:
        print(
            f"dispatch listening on http://{settings.host}:{port} "
            f"(backend: {settings.backend}, instance: {settings.instance})",
            flush=True,
        )
        sys.stdout.flush()

    return ready
