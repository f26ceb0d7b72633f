"""Request rates per key (a driver's location updates, a caller's map queries): a token
bucket per key, kept by each instance.

A driver normally streams to one instance (its WebSocket), so a per-instance bucket is
the right place; behind a balancer that spreads one driver's HTTP posts over N
instances the effective limit is up to N times higher, which is documented."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_TRACKED = 200_000


class RateLimiter:
    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def allow(self, key: str, cost: int = 1) -> bool:
        """Takes `cost` tokens (a frame of several fixes: one each), all or none."""
        now = self._clock()
        buckets = self._buckets
        known = buckets.get(key)
        if known is None:
            tokens = self._burst
            if len(buckets) >= MAX_TRACKED:
                buckets.popitem(last=False)  # forget the longest idle: its bucket is full
        else:
            tokens = known[0] + (now - known[1]) * self._rate
            if tokens > self._burst:
                tokens = self._burst
            buckets.move_to_end(key)  # most recently used last (no new entry: cheaper)
        allowed = tokens >= cost
        buckets[key] = (tokens - cost if allowed else tokens, now)
        return allowed

    def retry_after_s(self, key: str, cost: int = 1) -> int:
        """Whole seconds until `key` has `cost` tokens again (Retry-After); 0 if it has."""
        tokens, at = self._buckets.get(key, (self._burst, self._clock()))
        missing = cost - min(self._burst, tokens + (self._clock() - at) * self._rate)
        return math.ceil(missing / self._rate) if missing > 0 else 0
