"""`dispatch demo --keep-running`: the city runs on while an ops map page is open."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from dispatch.demo.run import while_watched


async def test_the_demo_runs_on_while_a_page_watches_and_stops_after_the_last_leaves() -> None:
    feed: Any = SimpleNamespace(watching=1)
    waiting = asyncio.create_task(while_watched(feed, asyncio.Event(), grace_s=0.1, poll_s=0.02))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    feed.watching = 0
    await asyncio.wait_for(waiting, 1.0)


async def test_ctrl_c_ends_the_wait_at_once() -> None:
    stop, feed = asyncio.Event(), SimpleNamespace(watching=1)
    waiting = asyncio.create_task(while_watched(feed, stop, poll_s=10))  # type: ignore[arg-type]
    stop.set()
    await asyncio.wait_for(waiting, 1.0)
