"""The products' part of the HTTP contract: the catalog and the fleet's vehicle call."""

from __future__ import annotations

from dispatch.entrypoints.contract import Shape


class ProductInfo(Shape):
    name: str
    seats: int  # a vehicle serving it has at least this many passenger seats
    flags: list[str]  # and each of these
    upgrades: list[str]  # products whose drivers may take its rides when none of its own is near
    fare_factor: float  # its quotes' fare amounts are the fare table's times this


class Products(Shape):
    products: list[ProductInfo]
    default: str  # what a ride request or quote naming no product asks for


class VehicleSet(Shape):
    driver_id: str
    products: list[str]  # what the driver serves from now on
    # false: the driver has no position yet; the products apply from its first fix
    applied: bool
