"""Searching for a product's drivers, and for its upgrades' when it has none near.

Own product first: an upgrade hands the rider a bigger or better car at their product's
price and takes that car from its own product's riders, so it is the fallback for a
pickup no driver of the product can reach within the radius, not a nearer alternative
(docs/api.md, "Products")."""

from __future__ import annotations

import asyncio

from dispatch.service_layer.deps import Deps
from geoindex import Neighbor


def upgrades_of(deps: Deps, product: str) -> tuple[str, ...]:
    """None for a product the catalog does not know (a ride stored before it changed)."""
    known = deps.products.products.get(product)
    return () if known is None else known.upgrades


async def nearest_upgrades(
    deps: Deps, lat: float, lng: float, k: int, radius_m: float, product: str
) -> list[Neighbor]:
    """The k nearest drivers serving any upgrade of `product`, merged by distance (a driver
    serving two of them once)."""
    found = await asyncio.gather(
        *(deps.index.nearest(lat, lng, k, radius_m, up) for up in upgrades_of(deps, product))
    )
    merged = {n.driver_id: n for hits in found for n in hits}
    return sorted(merged.values(), key=lambda n: (n.distance_m, n.driver_id))[:k]


async def nearest_eligible(
    deps: Deps, lat: float, lng: float, k: int, radius_m: float, product: str | None
) -> list[Neighbor]:
    """The product's k nearest drivers; its upgrades' if it has none within radius_m."""
    own = await deps.index.nearest(lat, lng, k, radius_m, product)
    if own or product is None:
        return own
    return await nearest_upgrades(deps, lat, lng, k, radius_m, product)
