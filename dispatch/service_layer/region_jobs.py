"""The loop of a per-region job (the market's surge recompute, batched matching's
windows): a round every interval while the instance lives, each round taking or renewing
the leases of the regions it works on (`held`: region -> fence); at the end the leases
are given up, so another instance takes the regions over at once instead of after the
lease."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from geoindex import BackendUnavailable

log = logging.getLogger(__name__)

Held = dict[int, int]  # region -> the fence of the lease this instance holds on it


async def run_region_job(
    name: str,
    one_round: Callable[[Held], Awaitable[object]],
    drop_lease: Callable[[int, int], Awaitable[None]],
    interval_s: float,
    *,
    give_up_leases: bool = True,
) -> None:
    """Run `one_round` every `interval_s` (start to start) until cancelled.
    `give_up_leases=False` leaves like a killed process: the others wait for the leases
    to lapse."""
    held: Held = {}
    task = asyncio.current_task()
    try:
        while True:
            started = time.monotonic()
            try:
                await one_round(held)
            except BackendUnavailable as exc:
                log.warning("%s skipped: %s", name, exc)
            except Exception:
                log.exception("%s failed; going on", name)  # the loop must live
            # redis-py can swallow a cancel that lands in a read (raising a timeout or a
            # connection error instead): the loop must stop all the same, or a stopped
            # instance would go on renewing its leases.
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))
    finally:
        if not give_up_leases:
            held.clear()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                for region, fence in held.items():
                    await drop_lease(region, fence)
