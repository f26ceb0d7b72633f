"""Everything a use case may touch, wired once by dispatch.bootstrap."""

from __future__ import annotations

from dataclasses import dataclass

from dispatch.domain.matching import MatchingPolicy
from dispatch.domain.products import DEFAULT_CATALOG, Catalog
from dispatch.domain.rides import Ride
from dispatch.service_layer.areas import AreaBook
from dispatch.service_layer.eta import EtaModel
from dispatch.service_layer.geofence import Geofence
from dispatch.service_layer.market import Market
from dispatch.service_layer.match_window import Batching
from dispatch.service_layer.ports import (
    Clock,
    DeadlineQueue,
    DriverStore,
    IdempotencyStore,
    Notifier,
    Observer,
    RiderRideStore,
    RideStore,
)
from dispatch.service_layer.rider_limits import RiderLimits
from geoindex import GeoIndex


class NullObserver:
    def ride_changed(self, ride: Ride) -> None:
        return None

    def locations(self, accepted: int, stale: int) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Deps:
    index: GeoIndex
    drivers: DriverStore
    rides: RideStore
    active_rides: RiderRideStore  # each rider's active rides, counted against a cap
    idempotency: IdempotencyStore
    deadlines: DeadlineQueue
    notifier: Notifier
    clock: Clock
    policy: MatchingPolicy
    observer: Observer
    market: Market  # demand, surge and quotes per H3 cell
    eta: EtaModel  # pickup ETAs, learned per area and hour
    areas: AreaBook  # service areas, no-pickup areas, airports: compiled, kept fresh
    fences: Geofence  # area crossings, their events, the airport queues
    # A reservation outlives its offer by this much, so the offer's own timeout (handled
    # by any instance) always releases it first; the lease only frees orphans.
    lease_grace_ms: int = 15_000
    # Batched matching (dispatch.service_layer.batching); None: immediate matching.
    batching: Batching | None = None
    # Per-rider request rates kept in the backend (rider_limits); None: not limited.
    rider_limits: RiderLimits | None = None
    products: Catalog = DEFAULT_CATALOG  # what riders may ask for, vehicles may serve
    # New ride ids in their rider's Redis Cluster slot (DISPATCH_RIDE_IDS, ride_requests).
    ride_ids_in_rider_slot: bool = True

    @property
    def lease_ms(self) -> int:
        return self.policy.offer_timeout_ms + self.lease_grace_ms
