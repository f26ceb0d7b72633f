"""Products (the kinds of car a rider may ask for) and vehicles (which products a driver's
car may serve): the configured catalog and the checks against it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# The index's rule for product names (geoindex.limits.PRODUCT_PATTERN; the domain imports
# only the standard library, tests/unit/dispatch/test_products.py holds the two to one).
NAME = re.compile(r"[a-z0-9][a-z0-9_\-]{0,31}")
FLAG = re.compile(r"[a-z0-9][a-z0-9_\-]{0,31}")
MAX_SEATS = 20
MAX_FARE_FACTOR = 10.0
MAX_PRODUCTS = 16  # per catalog, and so per vehicle (geoindex.limits.MAX_PRODUCTS)


class ProductError(ValueError):
    """A catalog, a product name or a vehicle that does not fit the configuration."""


@dataclass(frozen=True, slots=True)
class Product:
    name: str
    seats: int  # a vehicle serving it has at least this many passenger seats
    flags: frozenset[str] = frozenset()  # and every one of these (e.g. accessible)
    # Products whose drivers may take this product's rides when none of its own is near
    # (docs/api.md, "Products"): e.g. an XL car taking an economy ride.
    upgrades: tuple[str, ...] = ()
    # Its fares are the fare table's amounts times this (an XL ride costs more).
    fare_factor: float = 1.0


@dataclass(frozen=True, slots=True)
class Vehicle:
    seats: int
    flags: frozenset[str]
    products: tuple[str, ...]  # what the driver serves with it, sorted


@dataclass(frozen=True, slots=True)
class Catalog:
    products: Mapping[str, Product]
    default: str  # a ride request naming no product asks for this one

    def __post_init__(self) -> None:
        if not self.products or len(self.products) > MAX_PRODUCTS:
            raise ProductError(f"between 1 and {MAX_PRODUCTS} products")
        for name, p in self.products.items():
            if name != p.name or not NAME.fullmatch(name):
                raise ProductError(f"bad product name {name!r}")
            if not 1 <= p.seats <= MAX_SEATS:
                raise ProductError(f"product {name}: seats must be from 1 to {MAX_SEATS}")
            for flag in p.flags:
                if not FLAG.fullmatch(flag):
                    raise ProductError(f"product {name}: bad flag {flag!r}")
            for up in p.upgrades:
                if up not in self.products or up == name:
                    raise ProductError(f"product {name}: upgrade {up!r} is not another product")
            if not 0 < p.fare_factor <= MAX_FARE_FACTOR:  # NaN fails too
                raise ProductError(
                    f"product {name}: fare_factor must be in (0, {MAX_FARE_FACTOR:g}]"
                )
        if self.default not in self.products:
            raise ProductError(f"the default product {self.default!r} is not configured")

    @property
    def flags(self) -> frozenset[str]:
        return frozenset(f for p in self.products.values() for f in p.flags)

    def product(self, name: str) -> Product:
        if name not in self.products:
            known = ", ".join(self.products)
            raise ProductError(f"unknown product {name[:40]!r}; configured: {known}")
        return self.products[name]

    def vehicle(self, seats: int, flags: Iterable[str], products: Iterable[str]) -> Vehicle:
        """A vehicle, checked: every product it serves configured and its needs met."""
        flag_set = frozenset(flags)
        unknown = flag_set - self.flags
        if unknown:
            raise ProductError(f"unknown vehicle flag {sorted(unknown)[0]!r}")
        served = tuple(sorted(set(products)))
        if not served:
            raise ProductError("a vehicle serves at least one product")
        for name in served:
            p = self.product(name)
            if seats < p.seats:
                raise ProductError(f"{name} needs {p.seats} seats, the vehicle has {seats}")
            missing = p.flags - flag_set
            if missing:
                raise ProductError(f"{name} needs a vehicle that is {sorted(missing)[0]}")
        return Vehicle(seats, flag_set, served)


DEFAULT_CATALOG = Catalog(
    {
        "economy": Product("economy", 4, upgrades=("comfort", "xl")),
        "comfort": Product("comfort", 4, frozenset({"comfort"}), fare_factor=1.3),
        "xl": Product("xl", 6, fare_factor=1.5),
        "wav": Product("wav", 4, frozenset({"accessible"})),
    },
    default="economy",
)


_FILE_FIELDS = frozenset({"name", "seats", "flags", "upgrades", "fare_factor"})


def catalog_from(doc: object, default: str) -> Catalog:
    """The catalog from a products file's JSON document:
    {"products": [{"name": .., "seats": .., "flags": [..], "upgrades": [..],
    "fare_factor": ..}, ...]}."""
    if not isinstance(doc, dict) or not isinstance(doc.get("products"), list):
        raise ProductError('expected {"products": [...]}')
    products: dict[str, Product] = {}
    for item in doc["products"]:
        if not isinstance(item, dict) or set(item) - _FILE_FIELDS:
            raise ProductError(
                "each product: name, seats, and optional flags, upgrades and fare_factor"
            )
        name, seats = item.get("name"), item.get("seats")
        flags, upgrades = item.get("flags", []), item.get("upgrades", [])
        factor = item.get("fare_factor", 1.0)
        if not isinstance(name, str) or name in products:
            raise ProductError(f"product names must be distinct strings, not {name!r}")
        if isinstance(seats, bool) or not isinstance(seats, int):
            raise ProductError(f"product {name}: seats must be a whole number")
        if not _strings(flags) or not _strings(upgrades):
            raise ProductError(f"product {name}: flags and upgrades are lists of names")
        if isinstance(factor, bool) or not isinstance(factor, int | float):
            raise ProductError(f"product {name}: fare_factor must be a number")
        products[name] = Product(name, seats, frozenset(flags), tuple(upgrades), float(factor))
    return Catalog(products, default)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)
