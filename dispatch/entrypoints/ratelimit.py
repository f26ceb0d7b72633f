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
        tokens, at = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self._buckets[key] = (tokens, now)  # most recently used last
        if len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)  # forget the longest idle: its bucket is full
        return allowed

    def retry_after_s(self, key: str, cost: int = 1) -> int:
        """Whole seconds until `key` has `cost` tokens again (Retry-After); 0 if it has."""
        tokens, at = self._buckets.get(key, (self._burst, self._clock()))
        missing = cost - min(self._burst, tokens + (self._clock() - at) * self._rate)
        return math.ceil(missing / self._rate) if missing > 0 else 0
