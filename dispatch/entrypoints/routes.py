"""Every route of the service, in one table: the app serves it and /openapi.json is
generated from it (openapi.py), with the shapes of contract.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from dispatch.entrypoints import (
    area_streams,
    ops_stream,
    sse,
    views_areas,
    views_drivers,
    views_market,
    views_ops,
    views_ops_map,
    views_products,
    views_region_split,
    views_rides,
    ws_driver,
)
from dispatch.entrypoints import areas_contract as ac
from dispatch.entrypoints import contract as c
from dispatch.entrypoints import market_contract as mc
from dispatch.entrypoints import products_contract as pc
from dispatch.entrypoints import split_contract as sc

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Answer:
    description: str
    shape: Any = None  # a type of contract.py (or str); None: the body is not described
    media: str = "application/json"


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str  # may name Settings fields, filled in from the running settings
    answers: Mapping[int, Answer]
    errors: tuple[int, ...] = ()  # statuses answered with contract.Error
    body: Any = None  # the request body's type
    body_required: bool = True
    query: Any = None  # a Struct whose fields are the query parameters
    idempotency_key: bool = False
    access_token: bool = False  # the token may also come as a query parameter
    auth: bool = True
    allow_head: bool = False


def _ride_step(verb: str, handler: Handler, summary: str) -> Endpoint:
    return Endpoint(
        "POST",
        f"/v1/rides/{{ride_id}}/{verb}",
        handler,
        summary,
        {200: Answer("The ride after the step", c.Ride)},
        (400, 401, 403, 404, 409, 413, 422, 503),
        body=c.NoFields,
        body_required=False,
    )


ROUTES: list[Endpoint] = [
    Endpoint(
        "GET", "/healthz", views_ops.healthz, "Process alive (never touches the backend)",
        {200: Answer("Alive", c.Health)}, auth=False, allow_head=True,
    ),
    Endpoint(
        "GET", "/readyz", views_ops.readyz, "Backend reachable",
        {200: Answer("Ready", c.Ready)}, (503,), auth=False, allow_head=True,
    ),
    Endpoint(
        "GET", "/metrics", views_ops.metrics, "Prometheus metrics",
        {200: Answer("Text format 0.0.4", str, "text/plain")}, auth=False, allow_head=True,
    ),
    Endpoint(
        "GET", "/openapi.json", views_ops.openapi, "This document",
        {200: Answer("OpenAPI 3.1")}, auth=False, allow_head=True,
    ),
    Endpoint(
        "POST", "/v1/drivers/{driver_id}/location", views_drivers.post_location,
        "Post one fix (driver token for this id; at most {driver_rate_per_s:g}/s, burst "
        "{driver_rate_burst}; body at most {max_body_bytes} bytes)",
        {
            202: Answer("Accepted", c.Accepted),
            409: Answer("Stale: an equal or newer fix is stored; the body names it", c.StaleFix),
        },
        (400, 401, 403, 413, 422, 429, 503),
        body=c.Location,
    ),
    Endpoint(
        "POST", "/v1/locations", views_drivers.post_locations,
        "Post a batch of fixes (fleet token; at most {max_batch_items} updates, "
        "{max_batch_body_bytes} bytes); an invalid item does not stop the others",
        {200: Answer("One result per update, in order", c.BatchResults)},
        (400, 401, 403, 413, 422, 503),
        body=c.LocationBatch,
    ),
    Endpoint(
        "PUT", "/v1/drivers/{driver_id}/status", views_drivers.put_status,
        "Go available or offline (not while reserved or on a ride: 409)",
        {200: Answer("The driver", c.Driver)},
        (400, 401, 403, 409, 413, 422, 503),
        body=c.StatusChange,
    ),
    Endpoint(
        "PUT", "/v1/fleet/drivers/{driver_id}/vehicle", views_products.put_vehicle,
        "Set a driver's vehicle (fleet token): from now on the driver serves its products",
        {200: Answer("The products the driver serves", pc.VehicleSet)},
        (400, 401, 403, 413, 422, 503),
        body=c.Vehicle,
    ),
    Endpoint(
        "GET", "/v1/products", views_products.get_products,
        "The products riders may ask for, and which vehicles serve them (any token)",
        {200: Answer("The product catalog", pc.Products)},
        (401,),
    ),
    Endpoint(
        "GET", "/v1/drivers/{driver_id}", views_drivers.get_driver,
        "The driver's status, last fix and ride (404: nothing is known of this driver)",
        {200: Answer("The driver", c.Driver)},
        (401, 403, 404, 422, 503),
    ),
    Endpoint(
        "GET", "/v1/drivers/{driver_id}/stream", ws_driver.driver_stream,
        "Driver WebSocket (token in the header or ?access_token=); frames: docs/api.md and "
        "the ClientFrame and ServerFrame schemas; messages above {max_ws_message_bytes} "
        "bytes close the socket with 1009; a driver's socket beyond "
        "{max_streams_per_owner} on one instance closes its oldest with 4000",
        {101: Answer("Switching protocols")},
        (400, 401, 403, 422),
        access_token=True,
    ),
    Endpoint(
        "GET", "/v1/nearby", views_drivers.get_nearby,
        "Nearby available cars for a map, without driver identities (any token; at most "
        "{nearby_rate_per_s:g}/s per caller, burst {nearby_rate_burst})",
        {200: Answer("Cars, nearest first", c.Nearby)},
        (401, 422, 429, 503),
        query=c.NearbyQuery,
    ),
    Endpoint(
        "POST", "/v1/rides", views_rides.post_ride,
        "Request a ride (rider token). Immediate matching reserves the nearest free driver "
        "and offers the ride, or answers no_driver; batched matching answers searching "
        "(held until matched with `Prefer: wait=N`, N capped at {prefer_wait_max_s:g} s); "
        "at most {ride_request_rate_per_s:g} requests/s per rider, burst "
        "{ride_request_rate_burst}, on all instances together",
        {201: Answer("The ride: searching (batched), offered, or no_driver", c.Ride)},
        (400, 401, 403, 409, 413, 422, 429, 503),
        body=c.RideRequest,
        idempotency_key=True,
    ),
    Endpoint(
        "GET", "/v1/rides/{ride_id}", views_rides.get_ride,
        "A ride (its rider or its current driver)",
        {200: Answer("The ride", c.Ride)},
        (401, 403, 404, 503),
    ),
    Endpoint(
        "GET", "/v1/rides/{ride_id}/events", sse.ride_events,
        "Server-sent events for the ride's rider: the current state, then every change",
        {200: Answer("`data: <Ride json>` per change", c.Event, "text/event-stream")},
        (401, 403, 404, 503),
        access_token=True,
    ),
    _ride_step("accept", views_rides.accept, "The offered driver accepts"),
    _ride_step(
        "decline", views_rides.decline,
        "The offered driver declines; next candidate (batched: back to searching)",
    ),
    _ride_step("arrived", views_rides.arrived, "The driver is at the pickup"),
    _ride_step("start", views_rides.start, "The trip starts"),
    _ride_step("complete", views_rides.complete, "The trip ends; the driver is free again"),
    _ride_step(
        "cancel", views_rides.cancel,
        "The rider or the driver cancels (searching, offered, accepted or arrived only)",
    ),
    Endpoint(
        "GET", "/ops", views_ops_map.ops_page,
        "The live ops map, a page for people (open it as /ops#token=<ops token>: the "
        "fragment never leaves the browser)",
        {200: Answer("The page", str, "text/html")}, auth=False,
    ),
    Endpoint(
        "GET", "/v1/ops/stream", ops_stream.ops_stream,
        "Server-sent events for ops tokens: a snapshot of the drivers and rides in the "
        "watched area, then deltas at most every {ops_interval_s:g} s (docs/api.md)",
        {200: Answer("`event: snapshot` then `event: delta` frames", str, "text/event-stream")},
        (401, 403),
        access_token=True,
    ),
    Endpoint(
        "POST", "/v1/quotes", views_market.post_quote,
        "A fare quote (rider token; at most {quote_rate_per_s:g}/s per rider, burst "
        "{quote_rate_burst}): the product's surge in the pickup cell, the pickup ETA and the "
        "fare table's estimate times the product's fare factor, kept {quote_ttl_s:g} s; "
        "POST /v1/rides for the same product with its quote_id locks the surge",
        {201: Answer("The quote", mc.Quote)},
        (400, 401, 403, 413, 422, 429, 503),
        body=mc.QuoteRequest,
    ),
    Endpoint(
        "GET", "/v1/market", views_market.get_market,
        "Supply, demand, no-driver rate and surge per H3 cell of resolution {market_res} "
        "around a point, of one product or of every product (ops token; radius at most "
        "5000 m and 2000 cells, else 422; an unknown product 422); cells with nothing to "
        "show are left out",
        {200: Answer("The cells", mc.MarketView)},
        (401, 403, 422, 503),
        query=mc.MarketQuery,
    ),
    Endpoint(
        "GET", "/v1/market/stream", views_market.market_stream,
        "Server-sent events for ops tokens: `event: market` with every cell first, then "
        "the cells that changed and the ids of those gone, every {surge_interval_s:g} s "
        "(at least 1 s)",
        {200: Answer("`event: market`, `data: <MarketDelta json>` per change", c.Event,
                     "text/event-stream")},
        (401, 403, 422, 503),
        query=mc.MarketQuery,
        access_token=True,
    ),
    Endpoint(
        "POST", "/v1/market/pins", views_market.post_pins,
        "Pin a group of cells to a multiplier for one product or every product, or unpin "
        "them with multiplier null (ops token; market cells or coarser ones standing for "
        "every market cell inside, at most 500 ids and 5000 market cells); effective at "
        "the next recompute",
        {200: Answer("What was pinned", mc.Pinned)},
        (400, 401, 403, 413, 422, 503),
        body=mc.PinRequest,
    ),
    Endpoint(
        "PUT", "/v1/market/surge", views_market.put_surge_switch,
        "Turn surge off (every unpinned cell quotes 1.0) or back on (ops token); "
        "effective at the next recompute",
        {200: Answer("The switch", mc.SurgeSwitch)},
        (400, 401, 403, 413, 422, 503),
        body=mc.SurgeSwitch,
    ),
    Endpoint(
        "GET", "/v1/ops/region-split", views_region_split.get_region_split,
        "The geo index's split list (ops token): the region cells whose drivers are "
        "indexed at a finer resolution, and any change in progress (docs/api.md)",
        {200: Answer("The list", sc.RegionSplit)},
        (401, 403, 503),
    ),
    Endpoint(
        "PUT", "/v1/ops/region-split/{parent}", views_region_split.put_region_split,
        "Index a region cell's drivers at a finer resolution, or back at the region's "
        "(ops token); the change runs in the background (docs/api.md)",
        {202: Answer("The list as the change starts", sc.RegionSplit)},
        (400, 401, 403, 409, 413, 422, 503),
        body=sc.SplitRequest,
    ),
    Endpoint(
        "GET", "/v1/areas", views_areas.list_areas,
        "Every area, as GeoJSON Features with what they compiled to (ops token)",
        {200: Answer("The areas and their version", ac.AreaList)},
        (401, 403, 503),
    ),
    Endpoint(
        "GET", "/v1/areas/events", area_streams.area_events,
        "Server-sent events for ops tokens: `event: area` when a driver enters or leaves "
        "an area (after its dwell_s), `event: queue` when an airport queue's order changes, "
        "from every instance (docs/api.md)",
        {200: Answer("`data: <AreaEventFrame or QueueOrderEvent json>` per event",
                     ac.AreaEventFrame, "text/event-stream")},
        (401, 403),
        access_token=True,
    ),
    Endpoint(
        "GET", "/v1/areas/{area_id}/queue", area_streams.get_queue,
        "An airport's queue, head first, with the ride offered out of it to each driver "
        "that holds one (ops token; 404 if the area is not an airport)",
        {200: Answer("The queue", ac.AirportQueue)},
        (401, 403, 404, 422, 503),
    ),
    Endpoint(
        "PUT", "/v1/areas/{area_id}", views_areas.put_area,
        "Store or replace an area (ops token): a GeoJSON Feature, Polygon or MultiPolygon "
        "(holes allowed, either winding, at most 2000 positions, latitudes within 85, "
        "edges the shorter way round so the antimeridian may be crossed); every instance "
        "applies it within {areas_refresh_s:g} s. 422 invalid_area names what is wrong",
        {200: Answer("The stored area", ac.StoredArea)},
        (400, 401, 403, 413, 422, 503),
        body=ac.AreaFeature,
    ),
    Endpoint(
        "GET", "/v1/areas/{area_id}", views_areas.get_area, "One area (ops token)",
        {200: Answer("The area", ac.StoredArea)},
        (401, 403, 404, 422, 503),
    ),
    Endpoint(
        "DELETE", "/v1/areas/{area_id}", views_areas.delete_area, "Delete an area (ops token)",
        {204: Answer("Deleted")},
        (401, 403, 404, 422, 503),
    ),
]  # fmt: skip


# `events` is the areas' event stream, never an area id: the router must not match
# /v1/areas/events as /v1/areas/{area_id}, or a wrong method there would be answered
# with the area's methods in Allow.
_ROUTER_PATHS = {"{area_id}": "{area_id:(?!events$)[^{}/]+}"}


def _router_path(path: str) -> str:
    for documented, matched in _ROUTER_PATHS.items():
        path = path.replace(documented, matched)
    return path


def route_table(endpoints: list[Endpoint] = ROUTES) -> list[web.RouteDef]:
    return [
        web.get(_router_path(e.path), e.handler, allow_head=e.allow_head)
        if e.method == "GET"
        else web.route(e.method, _router_path(e.path), e.handler)
        for e in endpoints
    ]


# The WebSocket's frames, documented beside the routes' shapes.
FRAMES: dict[str, Any] = {
    "ClientFrame": c.AnyClientFrame,
    "ServerFrame": c.AnyServerFrame,
    # Also pushed to the driver: its area crossings and its place in an airport queue.
    "AreaFrame": ac.AreaEventFrame,
    "QueuePlaceFrame": ac.QueuePlaceFrame,
}
