"""Is the backend answering? One ping shared by every caller who asks while it is in
flight, and a success remembered for a moment: a storm of WebSocket upgrades (a thousand
drivers reconnecting at once) costs about one ping a second, not one each, and no
upgrade is refused because a thousand pings queued behind each other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from dispatch.service_layer.errors import BackendUnavailable


class BackendProbe:
    def __init__(self, fresh_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._fresh_s = fresh_s
        self._clock = clock
        self._ok_until = float("-inf")
        self._inflight: asyncio.Future[None] | None = None

    async def check(self, ping: Callable[[], Awaitable[None]], budget_s: float) -> None:
        """Returns if the backend answered a ping within `budget_s`, now or in the last
        `fresh_s`; else raises BackendUnavailable. A failure is not remembered."""
        if self._clock() < self._ok_until:
            return
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._ping(ping, budget_s))
            # Retrieved here too, in case every caller waiting on it was cancelled.
            self._inflight.add_done_callback(lambda f: f.cancelled() or f.exception())
        # Shielded: one caller cancelled (its client gone) does not cancel the others' ping.
        await asyncio.shield(self._inflight)

    async def _ping(self, ping: Callable[[], Awaitable[None]], budget_s: float) -> None:
        try:
            async with asyncio.timeout(budget_s):
                await ping()
        except TimeoutError as exc:
            raise BackendUnavailable(f"no answer within {budget_s:g} s") from exc
        else:
            self._ok_until = self._clock() + self._fresh_s
        finally:
            self._inflight = None
