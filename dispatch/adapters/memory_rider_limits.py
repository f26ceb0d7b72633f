"""LimitStore in process memory: the embedded backend's rider buckets, the same arithmetic
as lua/rider_admit.lua's bucket."""

from __future__ import annotations

import math
from collections import OrderedDict

from dispatch.service_layer.rider_limits import Rate

MAX_TRACKED = 200_000  # the longest idle are forgotten first: their buckets are full


class MemoryLimitStore:
    def __init__(self) -> None:
        self._buckets: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()

    async def take(self, rider_id: str, action: str, rate: Rate, now_ms: int) -> int:
        return self.take_now(rider_id, action, rate, now_ms)

    def take_now(self, rider_id: str, action: str, rate: Rate, now_ms: int) -> int:
        """take, without yielding to the loop (for a step that must not be split)."""
        key = (rider_id, action)
        per_ms = rate.per_s / 1000
        tokens, at = self._buckets.pop(key, (float(rate.burst), now_ms))
        if now_ms > at:  # a clock that went back refills nothing
            tokens, at = min(float(rate.burst), tokens + (now_ms - at) * per_ms), now_ms
        self._buckets[key] = (tokens, at)
        if len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)
        if tokens < 1:
            return max(1, math.ceil((1 - tokens) / per_ms))
        self._buckets[key] = (tokens - 1, at)
        return 0
