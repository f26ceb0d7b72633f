"""The wall clock in milliseconds (the same one the geo index uses for its TTL)."""

import time


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000
