"""Product endpoints (the catalog, a fleet's vehicle call), and the checks that turn a
request's product or vehicle into the catalog's, or a 422 naming the field."""

from __future__ import annotations

import msgspec
from aiohttp import web

from dispatch.domain.products import Catalog, ProductError, Vehicle
from dispatch.entrypoints import appkeys, contract, schemas
from dispatch.entrypoints import products_contract as pc
from dispatch.entrypoints.auth import principal
from dispatch.entrypoints.jsonio import json_response, read_body
from dispatch.entrypoints.schemas import InvalidBody
from dispatch.service_layer import drivers, vehicles
from dispatch.service_layer.deps import Deps

VEHICLE = msgspec.json.Decoder(contract.Vehicle)


def _deps(request: web.Request) -> Deps:
    return request.app[appkeys.RUNTIME].deps


def product_of(catalog: Catalog, name: str | None, field: str = "/product") -> str:
    """The product a request asks for: the one it names, if configured, or the default."""
    if name is None:
        return catalog.default
    try:
        return catalog.product(name).name
    except ProductError as exc:
        raise InvalidBody(str(exc), "unknown_product", field) from None


def vehicle_of(catalog: Catalog, v: contract.Vehicle, field: str) -> Vehicle:
    try:
        return catalog.vehicle(v.seats, v.flags, v.products)
    except ProductError as exc:
        raise InvalidBody(str(exc), "invalid_vehicle", field) from None


async def get_products(request: web.Request) -> web.Response:
    principal(request)  # any valid token
    catalog = _deps(request).products
    listed = [
        pc.ProductInfo(
            name=p.name,
            seats=p.seats,
            flags=sorted(p.flags),
            upgrades=list(p.upgrades),
            fare_factor=p.fare_factor,
        )
        for p in catalog.products.values()
    ]
    return json_response(pc.Products(products=listed, default=catalog.default))


async def put_vehicle(request: web.Request) -> web.Response:
    actor = principal(request)
    driver_id = schemas.driver_id(request.match_info["driver_id"])
    drivers.authorize_fleet(actor)  # 403 before reading the body
    raw = await read_body(request, request.app[appkeys.SETTINGS].max_body_bytes)
    vehicle = vehicle_of(_deps(request).products, schemas.parse(VEHICLE, raw), "/products")
    applied = await vehicles.fleet_set_vehicle(_deps(request), actor, driver_id, vehicle)
    answer = pc.VehicleSet(driver_id=driver_id, products=list(vehicle.products), applied=applied)
    return json_response(answer)
