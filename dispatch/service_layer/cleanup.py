"""One short time budget for the clean-ups of one failed request.

A request that fails after it changed something (reserved a driver, counted the ride
against the rider's cap, claimed its Idempotency-Key) undoes each, best effort: the
store that just failed may be slow or down, and a failed request must not be held for
long by its own undoing. Every undo left undone has a backstop that frees it later (the
reservation's lease, the count's staleness check, the key's lock running out), so the
budget is shared: whatever the first steps leave is all the later ones get."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

CLEANUP_BUDGET_S = 0.25


class CleanupBudget:
    def __init__(
        self, seconds: float = CLEANUP_BUDGET_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._seconds = seconds
        self._clock = clock
        self._deadline: float | None = None  # set by the first clean-up step

    def left_s(self) -> float:
        if self._deadline is None:
            self._deadline = self._clock() + self._seconds
        return max(0.0, self._deadline - self._clock())

    async def run(self, step: Coroutine[Any, Any, Any]) -> bool:
        """Run one undo within what is left; False when it failed, timed out or no time
        was left (it did not run then)."""
        left = self.left_s()
        if left <= 0:
            step.close()
            return False
        with contextlib.suppress(Exception):
            await asyncio.wait_for(step, left)
            return True
        return False
