"""The long-lived responses (driver WebSockets, rider event streams) of this instance,
so that shutdown can close them all with 1001 (going away) before the server stops."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

from aiohttp import WSCloseCode, web

from dispatch.service_layer.ports import Subscription


class Streams:
    def __init__(self) -> None:
        self.websockets: set[web.WebSocketResponse] = set()
        self.closing = asyncio.Event()  # set at shutdown: event streams end themselves

    async def close_all(self) -> None:
        self.closing.set()
        for ws in list(self.websockets):
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


async def next_message(
    subscription: Subscription, stop: asyncio.Event, timeout_s: float
) -> bytes | None | Literal[False]:
    """The next message; None when `timeout_s` passed first; False once `stop` is set."""
    if stop.is_set():
        return False
    getter = asyncio.ensure_future(subscription.get())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait(
            {getter, stopper}, timeout=timeout_s, return_when="FIRST_COMPLETED"
        )
    finally:
        stopper.cancel()
        if not getter.done():
            getter.cancel()
    if getter in done:
        return getter.result()
    return False if stop.is_set() else None
