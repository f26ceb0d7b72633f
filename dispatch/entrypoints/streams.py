"""The long-lived responses (driver WebSockets, rider event streams) of this instance:
shutdown closes them all with 1001 (going away) before the server stops, and each owner
(a driver's stream, a rider's event streams) holds a bounded number at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Literal, TypeVar

from aiohttp import WSCloseCode, web

T = TypeVar("T")


class Streams:
    def __init__(self, per_owner: int = 4) -> None:
        self.websockets: set[web.WebSocketResponse] = set()
        self.closing = asyncio.Event()  # set at shutdown: event streams end themselves
        self._per_owner = per_owner
        self._held: dict[str, list[asyncio.Event]] = {}

    @contextlib.contextmanager
    def held(self, owner: str) -> Iterator[asyncio.Event]:
        """Count one open stream of `owner`; the event is set once a newer one replaces it.

        Above `per_owner` streams the oldest is replaced, never the new one refused: a
        driver app reconnecting over a flaky network gets through while its old, half-open
        socket lingers (until the heartbeat finds it dead), and one token opening streams
        in a loop holds a bounded number of them all the same."""
        replaced = asyncio.Event()
        mine = self._held.setdefault(owner, [])
        mine.append(replaced)
        while len(mine) > self._per_owner:
            mine.pop(0).set()
        try:
            yield replaced
        finally:
            if replaced in mine:
                mine.remove(replaced)
            if not mine and self._held.get(owner) is mine:
                del self._held[owner]

    async def close_all(self) -> None:
        self.closing.set()
        for ws in list(self.websockets):
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


async def next_message(
    get: Callable[[], Awaitable[T]], stops: tuple[asyncio.Event, ...], timeout_s: float
) -> T | None | Literal[False]:
    """What `get` answers next; None when `timeout_s` passed first; False once a stop is
    set (a stream's end: shutdown, a newer stream of its owner, its token's expiry)."""
    if any(stop.is_set() for stop in stops):
        return False
    getter = asyncio.ensure_future(get())
    stoppers = [asyncio.ensure_future(stop.wait()) for stop in stops]
    try:
        done, _ = await asyncio.wait(
            {getter, *stoppers}, timeout=timeout_s, return_when="FIRST_COMPLETED"
        )
    finally:
        for stopper in stoppers:
            stopper.cancel()
        if not getter.done():
            getter.cancel()
    if getter in done:
        return getter.result()
    return False if any(stop.is_set() for stop in stops) else None
