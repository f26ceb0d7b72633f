"""Ports: what the use cases need from the outside world. Adapters implement them twice,
in memory (the embedded backend) and on Redis / Redis Cluster, under one contract suite."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from dispatch.domain.drivers import DriverRecord, DriverStatus
from dispatch.domain.market import CountWindow, Pin
from dispatch.domain.quotes import Quote
from dispatch.domain.rides import Ride
from dispatch.service_layer.notices import RideNotice
from dispatch.service_layer.rider_limits import Rate


class Clock(Protocol):
    def now_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Reservation:
    """One ask of DriverStore.reserve_many: `serves` as reserve's."""

    driver_id: str
    ride_id: str
    serves: tuple[str, ...] = ()


class DriverStore(Protocol):
    """Each driver's status, ride and fencing token. Every change is one atomic
    compare-and-set on the driver's own record (see dispatch.domain.drivers)."""

    async def get(self, driver_id: str) -> DriverRecord: ...

    async def set_status(self, driver_id: str, status: DriverStatus, now_ms: int) -> DriverRecord:
        """Raises DriverBusy if the driver holds a live reservation or is on a ride."""
        ...

    async def reserve(
        self,
        driver_id: str,
        ride_id: str,
        now_ms: int,
        lease_until: int,
        serves: tuple[str, ...] = (),
        hide: bool = False,
    ) -> DriverRecord | None:
        """None unless the driver is free, its last fix is within the index TTL and, if
        `serves` names products, the index has it serving one of them. `hide`: the driver
        is also to leave the geo index's search (index.set_available(driver, False)),
        which the caller finishes with hidden() once this returns a record; where the
        backend allows, the index's own record of the driver changes in the same atomic
        step as the reservation (on Redis: one script on the driver's slot)."""
        ...

    async def hidden(self, driver_id: str, fence: int) -> None:
        """The rest of reserve(hide=True)'s taking the driver out of the index's search,
        for the reservation it answered with `fence` (on Redis: the region's entry)."""
        ...

    async def reserve_many(
        self, asks: Sequence[Reservation], now_ms: int, lease_until: int
    ) -> list[DriverRecord | None]:
        """reserve() for each ask, in one round trip where the backend allows (a matching
        window's pairs); each is its own atomic step and may be refused alone."""
        ...

    async def confirm(self, driver_id: str, ride_id: str, fence: int, now_ms: int) -> bool: ...

    async def release(self, driver_id: str, ride_id: str, fence: int, show: bool = False) -> bool:
        """`show`: a driver this frees also comes back to the geo index's search
        (index.set_available(driver, True)), the index's own record of it changed in the
        same atomic step where the backend allows (on Redis: one script on its slot)."""
        ...

    async def expire_lease(self, driver_id: str, now_ms: int, show: bool = False) -> bool:
        """`show` as release's."""
        ...


@dataclass(frozen=True, slots=True)
class Answer:
    """A request's answer to store under its Idempotency-Key record (IdempotencyStore's
    `key`), as IdempotencyStore.finish does, with the ride the request creates."""

    key: str
    token: str
    payload: bytes
    ttl_ms: int


class RideStore(Protocol):
    async def create(self, ride: Ride, answer: Answer | None = None) -> bool:
        """Store a new ride; False if a ride with this id exists (nothing changes). With
        `answer`, a ride created finishes that Idempotency-Key record in the same step
        (IdempotencyStore.finish's rule: only while `answer.token` holds the key)."""
        ...

    async def get(self, ride_id: str) -> Ride | None: ...

    async def get_many(self, ride_ids: Sequence[str]) -> list[Ride | None]:
        """get() for each id, in one round trip where the backend allows."""
        ...

    async def replace(self, ride: Ride) -> bool:
        """Write `ride` only if the stored version is ride.version - 1 (compare-and-set)."""
        ...

    async def replace_many(self, rides: Sequence[Ride]) -> list[bool]:
        """replace() for each ride (distinct ids), in one round trip where the backend
        allows; each write is its own compare-and-set."""
        ...

    async def kept(self, ride_id: str) -> None:
        """Returns once the stored ride would survive a failover of its master: with
        durable writes (DISPATCH_DURABLE_WRITES) once a replica has it, else at once. For a
        retry that finds its ride stored by a try whose answer was lost."""
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

    async def admit(
        self, rider_id: str, ride_id: str, now_ms: int, cap: int, action: str, rate: Rate
    ) -> tuple[int, list[HeldRide]]:
        """Take one token of the rider's limit for `action` (LimitStore.take's bucket),
        then hold the ride, as one step. Returns (ms until a token is there, []) when the
        bucket is empty (nothing taken or counted), else (0, what hold returns)."""
        ...

    async def drop(self, rider_id: str, ride_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Admission:
    """RiderRideStore.admit's arguments (hold's, with no rate), for an IdempotencyStore
    that can admit with the claim in one step (IdempotencyStore.begin)."""

    rider_id: str
    ride_id: str
    now_ms: int
    cap: int
    action: str
    rate: Rate | None


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
    # With begin's `ride_id`, a store that reads the ride in the same step (Redis: the
    # record shares the ride's slot) sets `looked` and `ride` (None: not stored).
    looked: bool = False
    ride: Ride | None = None
    # With begin's `admission`, a store that admitted with a NEW claim whose ride is not
    # stored sets what RiderRideStore.admit returns (None: not admitted, admit yourself).
    admitted: tuple[int, list[HeldRide]] | None = None


class IdempotencyStore(Protocol):
    async def begin(
        self,
        key: str,
        fingerprint: str,
        lock_ms: int,
        ride_id: str | None = None,
        admission: Admission | None = None,
    ) -> Claim:
        """Claim `key` (a name free of braces: a ride request's is its ride id), or report
        what is there. `ride_id`: the ride this key's request stores, which the claim may
        report too (Claim.looked). `admission`: the rider's admission of that ride, which
        the store may make with a NEW claim finding no ride stored (Claim.admitted)."""
        ...

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
    shard: str = ""  # where the store keeps it ('': where its name puts it); see `beside`


class DeadlineQueue(Protocol):
    """Shared, durable timers: any instance may claim a due item, and an item whose
    claimer dies comes back after `retry_ms`. Handlers must therefore be idempotent."""

    async def schedule(self, item: str, due_ms: int) -> None: ...

    async def schedule_many(
        self,
        due: Mapping[str, int],
        beside: str | None = None,
        keep_earlier: bool = False,
        near: str | None = None,
    ) -> None:
        """schedule() for each item, in one round trip where the backend allows. With
        `near` (a driver id), every item is kept near that driver's own records where the
        store can: on a sharded store, one write with the driver's reservation. Failing
        that, with `beside` (an item's name), every item is kept where that item is: one
        write on a sharded store. An item kept so is reached through the Claimed a claim
        gives it (done, again), not by its name alone: cancel() finds one kept near a
        driver given the same driver, and may miss one kept beside another item, so that
        is only for items never cancelled. With `keep_earlier`, an item already due
        earlier stays so: a reservation that may have been refused must not put off its
        driver's lease check."""
        ...

    async def cancel(self, item: str, near: str | None = None, by_name: bool = True) -> None:
        """Remove the item where its name puts it and, with `near`, the copy kept near that
        driver (schedule_many). Best effort for the copy: should the store have moved the
        driver's records since (a cluster's slot moved), that copy is missed and fires
        once more, which every handler shrugs off. `by_name=False`: only a copy kept near
        the driver apart from the name's place (the item was scheduled again by name)."""
        ...

    async def claim(self, now_ms: int, limit: int, retry_ms: int) -> list[Claimed]: ...

    async def done(self, claimed: Claimed) -> None: ...

    async def again(self, claimed: Claimed, due_ms: int) -> None:
        """A claimed item due again at `due_ms`, kept where it is."""
        ...


class Subscription(Protocol):
    async def get(self) -> RideNotice:
        """The next notice; safe to cancel (nothing is lost by cancelling a wait)."""
        ...


# Where the listeners of some topics are, as a notifier looked them up (topic -> the
# instances holding one): given back to publish_many, which does not look them up again.
Holders = Mapping[str, Sequence[str]]


class Notifier(Protocol):
    """Best-effort notices to whoever listens on a topic, on any instance."""

    async def publish(self, topic: str, notice: RideNotice) -> None: ...

    async def publish_many(
        self, sends: Sequence[tuple[str, RideNotice]], holders: Holders | None = None
    ) -> None:
        """publish() for each (topic, notice), in a few round trips whatever their number;
        the notices of one topic in their order. The topics in `holders` are sent to
        those holders without a look-up (one made just before, by holders())."""
        ...

    async def holders(self, topics: Sequence[str]) -> Holders:
        """Who listens on `topics` now, for a publish_many soon after. Inside together()
        it goes in the write of the calls started with it to the same node (a driver's
        topic is looked up where the driver's own keys are)."""
        ...

    def subscribe(self, topic: str) -> AbstractAsyncContextManager[Subscription]: ...


class Observer(Protocol):
    """Hooks for metrics; no behaviour may depend on them."""

    def ride_changed(self, ride: Ride) -> None: ...

    def locations(self, accepted: int, stale: int) -> None: ...


# -- the market (dispatch.service_layer.market) ------------------------------------------
class Outcome(enum.Enum):
    QUOTE = "-"  # a fare quote: demand, no outcome
    OFFERED = "o"  # a ride request that got a driver
    NO_DRIVER = "x"  # a ride request that ended no_driver


@dataclass(frozen=True, slots=True)
class Ask:
    """A rider asking for a quote or a ride in a pickup cell: one unit of demand."""

    cell: str  # H3 hex at the market resolution
    region: int  # the geo index's region of the cell: the market's partition
    rider_id: str
    at_ms: int
    outcome: Outcome
    eta_s: int | None = None  # the pickup ETA of an offered ride
    # What the rider asked for (the catalog's name): every count is kept per product.
    product: str = field(kw_only=True)


# A pin's cell and product (None: every product of the cell).
PinKey = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class CellCounts:
    """One cell's counts over the window."""

    riders: int = 0  # distinct riders asking (quotes and requests)
    requests: int = 0
    no_driver: int = 0
    eta_sum_s: int = 0
    etas: int = 0


@dataclass(frozen=True, slots=True)
class SurgePatch:
    """A region's surge as changed since the write that left the token `since`: each
    (cell, product) quoted anew (None: back to 1.0), each cell's highest over products
    anew (None: 1.0), the recompute's whole state if it moved (None: as it was)."""

    since: str
    token: str  # what this write leaves
    quoted: Mapping[tuple[str, str], float | None]
    highest: Mapping[str, float | None]
    computed: Mapping[str, Mapping[str, float]] | None


class MarketStore(Protocol):
    """Demand counters, surge values and operators' controls, partitioned by region
    (on Redis Cluster a region's market lives in the region's slot)."""

    async def count(self, ask: Ask, window: CountWindow) -> None:
        """Count `ask` into its cell's and product's current bucket; a rider already
        counted in the cell for the product within the window counts no more demand (its
        outcome still counts)."""
        ...

    async def count_many(self, asks: Sequence[Ask], window: CountWindow) -> None:
        """count() for each ask, in order, in one round trip where the backend allows."""
        ...

    async def counts(
        self, regions: Sequence[int], window: CountWindow, now_ms: int, products: Sequence[str]
    ) -> dict[int, dict[str, CellCounts]]:
        """Per region, every cell with counts in the window at `now_ms`, summed over
        `products` (a rider asking for two of them counts in each)."""
        ...

    async def riders(
        self, regions: Sequence[int], window: CountWindow, now_ms: int, products: Sequence[str]
    ) -> dict[int, dict[str, dict[str, int]]]:
        """Per region and product, the distinct riders of every cell with any in the
        window (products without any left out): the part of `counts` a surge recompute
        reads, at a fraction of its cost."""
        ...

    async def riders_in(
        self,
        cells: Mapping[int, Sequence[str]],
        window: CountWindow,
        now_ms: int,
        products: Sequence[str],
    ) -> dict[str, dict[str, int]]:
        """Per product, the distinct riders of the named cells of each region (a
        region's own read: one slot each), cells without any left out: a neighbouring
        region's border."""
        ...

    async def active_regions(self, now_ms: int, since_ms: int) -> list[int]:
        """Regions with demand counted (by any instance) or kept active since `since_ms`."""
        ...

    async def keep_active(self, regions: Sequence[int], now_ms: int) -> None: ...

    async def take_lease(
        self, region: int, holder: str, ttl_ms: int, resume: int = 0
    ) -> int | None:
        """Hold or renew the lease on the region's surge job: its fencing token, or None
        while another holder's lease lives. `resume`: the fence this holder last held,
        given back if its lease lapsed and no one has taken the region since."""
        ...

    async def drop_lease(self, region: int, holder: str, fence: int) -> None: ...

    async def put_surge(
        self,
        region: int,
        holder: str,
        fence: int,
        computed: Mapping[str, Mapping[str, float]],
        quoted: Mapping[str, Mapping[str, float]],
        ttl_ms: int,
        token: str | None = None,
    ) -> bool:
        """Replace the region's surge, per product and cell (absent: 1.0), only if
        `holder` still holds the lease under `fence`; False (nothing written) otherwise.
        `token` names this write (surge_token answers it until the next one)."""
        ...

    async def patch_surge(
        self, region: int, holder: str, fence: int, patch: SurgePatch, ttl_ms: int
    ) -> bool | None:
        """put_surge of the surge `patch` leads to from the stored one, written as its
        changes (expiry renewed for all): True if written, False if the lease is not
        `holder`'s under `fence`, None (nothing written) if the stored surge is not the
        write named `patch.since` (lost, expired, another's): write it in full."""
        ...

    async def surge_token(self, region: int) -> str | None:
        """The token of the region's stored surge (None: none, or written without)."""
        ...

    async def computed(self, region: int) -> dict[str, dict[str, float]]:
        """Per product, the multipliers the last recompute reached (before pins and the
        switch)."""
        ...

    async def surge(
        self, cells: Sequence[tuple[str, int]], product: str | None
    ) -> dict[str, float]:
        """What riders of `product` are quoted for each (cell, region) (None: the highest
        of any product there); cells at 1.0 are left out."""
        ...

    async def pins(self, region: int) -> dict[PinKey, Pin]: ...

    async def set_pins(self, region: int, pins: Mapping[PinKey, Pin | None], now_ms: int) -> None:
        """Pin cells (None: unpin); pins past their time are dropped on the way."""
        ...

    async def enabled(self) -> bool:
        """Surge on (the default) or turned off by an operator, for every region."""
        ...

    async def set_enabled(self, enabled: bool) -> None: ...


class QuoteStore(Protocol):
    async def put(self, quote: Quote) -> None:
        """Keep the quote until its expires_at (then it is gone)."""
        ...

    async def get(self, quote_id: str) -> Quote | None: ...
