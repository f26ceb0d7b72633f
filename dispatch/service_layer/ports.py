"""Ports: what the use cases need from the outside world. Adapters implement them twice,
in memory (the embedded backend) and on Redis / Redis Cluster, under one contract suite."""

from __future__ import annotations

import enum
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from dispatch.domain.drivers import DriverRecord, DriverStatus
from dispatch.domain.rides import Ride


class Clock(Protocol):
    def now_ms(self) -> int: ...


class DriverStore(Protocol):
    """Each driver's status, ride and fencing token. Every change is one atomic
    compare-and-set on the driver's own record (see dispatch.domain.drivers)."""

    async def get(self, driver_id: str) -> DriverRecord: ...

    async def set_status(self, driver_id: str, status: DriverStatus, now_ms: int) -> DriverRecord:
        """Raises DriverBusy if the driver holds a live reservation or is on a ride."""
        ...

    async def reserve(
        self, driver_id: str, ride_id: str, now_ms: int, lease_until: int
    ) -> DriverRecord | None:
        """None unless the driver is free and its last fix is within the index TTL."""
        ...

    async def confirm(self, driver_id: str, ride_id: str, fence: int, now_ms: int) -> bool: ...

    async def release(self, driver_id: str, ride_id: str, fence: int) -> bool: ...

    async def expire_lease(self, driver_id: str, now_ms: int) -> bool: ...


class RideStore(Protocol):
    async def create(self, ride: Ride) -> bool:
        """Store a new ride; False if a ride with this id exists (nothing changes)."""
        ...

    async def get(self, ride_id: str) -> Ride | None: ...

    async def replace(self, ride: Ride) -> bool:
        """Write `ride` only if the stored version is ride.version - 1 (compare-and-set)."""
        ...


@dataclass(frozen=True, slots=True)
class HeldRide:
    ride_id: str
    held_at: int  # when the request that made it counted it (ms)


class RiderRideStore(Protocol):
    """Each rider's active rides, counted against a cap when a ride is requested."""

    async def hold(self, rider_id: str, ride_id: str, now_ms: int, cap: int) -> list[HeldRide]:
        """Count `ride_id` among the rider's active rides unless `cap` are counted already.
        Returns [] when counted (or counted before), else the rides that fill the cap."""
        ...

    async def drop(self, rider_id: str, ride_id: str) -> None: ...


class ClaimState(enum.Enum):
    NEW = "new"  # the caller owns the key now and must finish or abandon it
    DONE = "done"  # an earlier request finished: payload is its answer
    PENDING = "pending"  # another request with this key is running
    MISMATCH = "mismatch"  # the key was used with another request


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    token: str = ""
    payload: bytes = b""


class IdempotencyStore(Protocol):
    async def begin(self, key: str, fingerprint: str, lock_ms: int) -> Claim: ...

    async def finish(self, key: str, token: str, payload: bytes, ttl_ms: int) -> None: ...

    async def abandon(self, key: str, token: str) -> None: ...

    async def touch(self, key: str, token: str, lock_ms: int) -> None:
        """Still holding the key: its lock runs lock_ms from now (while unfinished)."""
        ...

    async def forget(self, key: str, payload: bytes) -> None:
        """Drop a finished key whose answer is still `payload` (an answer found stale)."""
        ...


@dataclass(frozen=True, slots=True)
class Claimed:
    item: str
    score: int  # the retry time the claim set; `done` removes the item only if unchanged


class DeadlineQueue(Protocol):
    """Shared, durable timers: any instance may claim a due item, and an item whose
    claimer dies comes back after `retry_ms`. Handlers must therefore be idempotent."""

    async def schedule(self, item: str, due_ms: int) -> None: ...

    async def cancel(self, item: str) -> None: ...

    async def claim(self, now_ms: int, limit: int, retry_ms: int) -> list[Claimed]: ...

    async def done(self, claimed: Claimed) -> None: ...


class Subscription(Protocol):
    async def get(self) -> bytes:
        """The next message; safe to cancel (nothing is lost by cancelling a wait)."""
        ...


class Notifier(Protocol):
    """Best-effort messages to whoever listens on a topic, on any instance."""

    async def publish(self, topic: str, message: bytes) -> None: ...

    def subscribe(self, topic: str) -> AbstractAsyncContextManager[Subscription]: ...


class Observer(Protocol):
    """Hooks for metrics; no behaviour may depend on them."""

    def ride_changed(self, ride: Ride) -> None: ...

    def locations(self, accepted: int, stale: int) -> None: ...
