"""Fare quotes: what a rider would pay for a product from a pickup (the product's surge in
its cell, the pickup ETA, the fare table's estimate), kept for a while so a ride request
for the product can lock it in; and the market's count of every ride request into its
product."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from dispatch.domain import quotes
from dispatch.domain.fares import FareTable, estimate
from dispatch.domain.geo import LatLng, haversine_m
from dispatch.domain.principals import Principal, Role
from dispatch.domain.quotes import Quote
from dispatch.domain.rides import Ride, RideStatus
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.errors import Forbidden
from dispatch.service_layer.market import ask_of, cell_of, count_ask, count_asks, surge_at
from dispatch.service_layer.ports import Outcome
from dispatch.service_layer.product_search import nearest_eligible


def new_quote_id() -> str:
    return "q_" + uuid.uuid4().hex


async def pickup_eta_s(deps: Deps, pickup: LatLng, product: str | None = None) -> int | None:
    """The nearest available driver's ETA within the widest search radius, if any (with
    a product: of its drivers, or of its upgrades' when none of them is near)."""
    widest = deps.policy.radius_steps_m[-1]
    found = await nearest_eligible(deps, pickup.lat, pickup.lng, 1, widest, product)
    if not found:
        return None
    return await deps.eta.eta_s(pickup, found[0].distance_m, deps.clock.now_ms())


def fare_table(deps: Deps, at: LatLng, product: str) -> FareTable:
    """The fare table of the service area holding `at` (the lowest id if several with a
    fare do), else the default from the settings; times the product's fare factor."""
    own = sorted(
        (c.area.id, c.area.fare) for c in deps.areas.holding(at.lat, at.lng) if c.area.fare
    )
    table = own[0][1] if own else deps.market.config.fare
    return table.for_product(deps.products.product(product).fare_factor)


async def make_quote(
    deps: Deps,
    actor: Principal,
    pickup: LatLng,
    dropoff: LatLng | None,
    product: str | None = None,
) -> Quote:
    if actor.role is not Role.RIDER:
        raise Forbidden("only a rider token may ask for a quote")
    market = deps.market
    now = deps.clock.now_ms()
    product = product or deps.products.default
    cell, surge = await surge_at(market, pickup, product)
    eta = await pickup_eta_s(deps, pickup, product)
    fare = fare_table(deps, pickup, product)
    trip = None
    if dropoff is not None:
        road = await deps.eta.params(pickup, now)  # the pickup area's, for the whole trip
        metres = haversine_m(pickup, dropoff) * road.circuity
        trip = estimate(fare, metres, metres / road.speed_mps, surge)
    quote = Quote(
        id=new_quote_id(),
        rider_id=actor.id,
        cell=cell,
        pickup=pickup,
        dropoff=dropoff,
        surge=surge,
        pickup_eta_s=eta,
        fare=fare,
        estimate=trip,
        created_at=now,
        expires_at=now + market.config.quote_ttl_ms,
        product=product,
    )
    await market.quotes.put(quote)
    await count_ask(market, actor.id, pickup, now, Outcome.QUOTE, product=product)
    return quote


async def locked_surge(
    deps: Deps, actor: Principal, quote_id: str, pickup: LatLng, product: str | None = None
) -> float:
    """The multiplier a ride request for `product` (None: the default) locks in with
    `quote_id`, or QuoteExpired / QuoteMismatch (raised before anything is reserved)."""
    cell, _ = cell_of(deps.market.config, pickup)
    quote = await deps.market.quotes.get(quote_id)
    asked = product or deps.products.default
    return quotes.check(quote, actor.id, cell, deps.clock.now_ms(), asked).surge


async def count_request(deps: Deps, ride: Ride) -> None:
    """A stored ride request, counted into its product and pickup cell with how it
    ended (one store call)."""
    await count_requests(deps, [ride])


async def count_requests(deps: Deps, rides: Sequence[Ride]) -> None:
    """count_request for many (a matching window's), in one store call."""
    asks = []
    for ride in rides:
        no_driver = ride.status is RideStatus.NO_DRIVER
        outcome = Outcome.NO_DRIVER if no_driver else Outcome.OFFERED
        eta = None if no_driver else ride.eta_s
        product = ride.product or deps.products.default
        when = ride.created_at
        asks.append(
            ask_of(deps.market, ride.rider_id, ride.pickup, when, outcome, eta, product=product)
        )
    await count_asks(deps.market, asks)
