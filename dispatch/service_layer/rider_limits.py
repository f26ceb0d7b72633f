"""Per-rider limits on the requests that write to the backend (ride requests, quotes).

Kept in the backend, not per instance: a balancer spreads one rider's requests over every
instance, so a per-instance bucket lets one token write N times the rate. Each limit is a
token bucket (`per_s` tokens a second, up to `burst`) on the rider's own key, taken in one
atomic step. Without it one rider token could store a ride and its answer per request,
as fast as it can send them (a `no_driver` ride holds no driver, so no other cap applies)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

RIDES = "rides"  # POST /v1/rides that would make a new ride
QUOTES = "quotes"  # POST /v1/quotes


@dataclass(frozen=True, slots=True)
class Rate:
    per_s: float
    burst: int


class LimitStore(Protocol):
    async def take(self, rider_id: str, action: str, rate: Rate, now_ms: int) -> int:
        """Take one token from the rider's bucket for `action`: 0 when taken, else the
        milliseconds until one is there (nothing is taken then)."""
        ...


class RiderRateLimited(Exception):
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int, action: str = "") -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s  # whole seconds, at least 1 (Retry-After)
        self.action = action  # RIDES or QUOTES


@dataclass(frozen=True, slots=True)
class RiderLimits:
    store: LimitStore
    rates: Mapping[str, Rate]  # by action; an action with no rate is not limited

    async def take(self, action: str, rider_id: str, now_ms: int) -> None:
        """Count one `action` of the rider, or raise RiderRateLimited."""
        rate = self.rates.get(action)
        if rate is None:
            return
        wait_ms = await self.store.take(rider_id, action, rate, now_ms)
        if wait_ms > 0:
            raise rate_limited(action, wait_ms)


def rate_limited(action: str, wait_ms: int) -> RiderRateLimited:
    """The refusal of an `action` whose next token is `wait_ms` away."""
    retry_after_s = max(1, math.ceil(wait_ms / 1000))
    return RiderRateLimited(f"too many {action} for this rider; slow down", retry_after_s, action)


async def take(limits: RiderLimits | None, action: str, rider_id: str, now_ms: int) -> None:
    """RiderLimits.take, for wiring that may have none (tests building their own deps)."""
    if limits is not None:
        await limits.take(action, rider_id, now_ms)
