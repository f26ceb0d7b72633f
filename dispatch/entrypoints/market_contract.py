"""The market's part of the HTTP contract (quotes, the ops view of cells, surge
controls), declared as msgspec Structs like the rest of contract.py: validation decodes
into them and /openapi.json is generated from them."""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, UnsetType

from dispatch.entrypoints.contract import Latitude, LatLng, Longitude, ProductName, Shape
from dispatch.service_layer.market import MAX_VIEW_RADIUS_M

QuoteId = Annotated[str, Meta(pattern="^q_[0-9a-f]{32}$")]
# An H3 cell as its 15 hex digits; checked by h3 as well before any use.
CellId = Annotated[str, Meta(pattern="^[0-9a-f]{15}$")]
MAX_PIN_CELLS = 500  # ids in one request; each may be a coarser cell standing for a group
MAX_PINNED_CELLS = 5_000  # market cells one request may pin, groups expanded
MAX_PIN_TTL_S = 7 * 24 * 3600


# -- requests ------------------------------------------------------------------------------
class QuoteRequest(Shape):
    pickup: LatLng
    dropoff: LatLng | None = None
    # The product's surge and fare; the pickup ETA is that of the product's nearest
    # driver (its upgrades' if none is near); default: the configured default product.
    product: ProductName | None = None


class MarketQuery(Shape):
    """GET /v1/market's and /v1/market/stream's query string."""

    lat: Latitude
    lng: Longitude
    radius_m: Annotated[float, Meta(ge=0, le=MAX_VIEW_RADIUS_M)] = 1_000.0
    product: ProductName | None = None  # one product's market; absent: every product's


class PinRequest(Shape):
    """Pin (or with multiplier null, unpin) a group of cells: market cells, or coarser
    cells standing for every market cell inside them."""

    cells: Annotated[list[CellId], Meta(min_length=1, max_length=MAX_PIN_CELLS)]
    multiplier: Annotated[float, Meta(ge=1.0, le=10.0)] | None
    ttl_s: Annotated[int, Meta(ge=1, le=MAX_PIN_TTL_S)] = 3_600
    # The product whose riders the pin prices; absent: every product (a product's own
    # pin wins over it while both live).
    product: ProductName | None = None


class SurgeSwitch(Shape):
    enabled: bool


# -- answers -------------------------------------------------------------------------------
class Fare(Shape):
    currency: str
    base: float
    per_km: float
    per_min: float
    minimum: float
    estimate_low: float | None  # null without a dropoff
    estimate_high: float | None


class Quote(Shape):
    id: str
    cell: str
    pickup_eta_s: int | None  # null: no driver within the search radius now
    surge: float
    fare: Fare
    expires_at: int
    product: str  # what the quote prices (the request's, or the default)


class MarketCell(Shape):
    id: str
    lat: float  # the cell's centre
    lng: float
    # Of the product asked for, or of every product when none is:
    supply: int  # available, fresh drivers now (of all: each driver once)
    demand_per_min: float  # distinct riders asking (quotes and requests), per minute
    requests: int  # ride requests in the window
    no_driver_rate: float | None  # of those requests; null without requests
    mean_eta_s: float | None  # pickup ETA of the offered ones
    surge: float  # of all: the highest any product is quoted in the cell


class MarketView(Shape):
    res: int
    window_s: float
    surge_enabled: bool
    product: str | None  # the product asked for; null: every product
    at: int  # ms: when this instance read the area (the answer is that old, at most 5 s)
    cells: list[MarketCell]


class Pinned(Shape):
    cells: int  # market cells pinned or unpinned
    multiplier: float | None
    until: int | None  # ms
    product: str | None  # null: for every product


class MarketDelta(Shape):
    """One event of the market stream: cells new or changed since the last, and the ids
    of those that are gone (nothing left to show)."""

    cells: list[MarketCell]
    removed: list[str]
    at: int
    snapshot: bool | UnsetType = UNSET  # true on the first event: every cell
