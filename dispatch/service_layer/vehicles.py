"""A driver's vehicle: checked against the product catalog, it decides which products the
driver serves (kept in the geo index, which searches per product)."""

from __future__ import annotations

from dispatch.domain.principals import Principal
from dispatch.domain.products import Vehicle
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.drivers import authorize_fleet


async def set_vehicle(deps: Deps, driver_id: str, vehicle: Vehicle) -> bool:
    """Serve the vehicle's products from now on; in one atomic step per index region, so
    no search finds the driver under a product of its previous vehicle. False if the
    driver has no position yet (the products then apply from its first fix)."""
    return await deps.index.set_products(driver_id, vehicle.products)


async def fleet_set_vehicle(deps: Deps, actor: Principal, driver_id: str, vehicle: Vehicle) -> bool:
    """A fleet operator assigns a vehicle to one of its drivers (fleet token)."""
    authorize_fleet(actor)
    return await set_vehicle(deps, driver_id, vehicle)
