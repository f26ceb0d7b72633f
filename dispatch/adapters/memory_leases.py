"""Per-region leases with fencing tokens, in process memory: the rules of
lua/market_lease.lua and market_lease_drop.lua for the embedded backend. The market's
surge job and batched matching's windows each hold one per region."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Lease:
    holder: str
    fence: int
    until_ms: int


class MemoryLeases:
    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._leases: dict[int, _Lease] = {}
        self._fences: dict[int, int] = {}  # outlive their leases: a token is never reused

    def take(self, region: int, holder: str, ttl_ms: int, resume: int = 0) -> int | None:
        """Take or renew the region's lease: its fence, or None while another holds it;
        a lapsed lease comes back with `resume` while that is still the last fence issued."""
        now = self._clock()
        lease = self._leases.get(region)
        if lease is not None and lease.until_ms > now:
            if lease.holder != holder:
                return None
            lease.until_ms = now + ttl_ms
            return lease.fence
        if resume and self._fences.get(region) == resume:
            self._leases[region] = _Lease(holder, resume, now + ttl_ms)
            return resume
        fence = self._fences[region] = self._fences.get(region, 0) + 1
        self._leases[region] = _Lease(holder, fence, now + ttl_ms)
        return fence

    def holds(self, region: int, holder: str, fence: int) -> bool:
        lease = self._leases.get(region)
        return (
            lease is not None
            and lease.until_ms > self._clock()
            and (lease.holder, lease.fence) == (holder, fence)
        )

    def drop(self, region: int, holder: str, fence: int) -> None:
        if self.holds(region, holder, fence):
            del self._leases[region]
