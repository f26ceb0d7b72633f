"""Background loops stop at shutdown even when a cancel is swallowed, and never hold it
past the bound."""

from __future__ import annotations

import asyncio

from dispatch.entrypoints import background


async def swallows_one_cancel(stopped: list[str]) -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        pass  # as redis-py does when a read times out at the same moment
    try:
        await asyncio.sleep(3600)
    finally:
        stopped.append("second cancel")


async def stops_only_when_told(told: asyncio.Event) -> None:
    while not told.is_set():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue


async def test_a_loop_that_swallowed_its_cancel_is_cancelled_again() -> None:
    stopped: list[str] = []
    async with background.running(("swallower", swallows_one_cancel(stopped))):
        await asyncio.sleep(0)
    assert stopped == ["second cancel"]


async def test_a_loop_that_never_stops_is_left_behind_after_the_bound() -> None:
    told = asyncio.Event()
    task = asyncio.create_task(stops_only_when_told(told), name="stubborn")
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await background.stop(task, within_s=0.3)
    assert 0.3 <= loop.time() - started < 1.0 and not task.done()
    told.set()
    await background.stop(task)
    assert task.done()
