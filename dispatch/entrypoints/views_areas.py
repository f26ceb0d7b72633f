"""Area endpoints (ops tokens): store, read, list and delete areas as GeoJSON Features."""

from __future__ import annotations

import msgspec
from aiohttp import web

from dispatch.domain.areas import DEFAULT_DWELL_S, Area, AreaKind, InvalidArea, Polygon
from dispatch.domain.fares import FareTable
from dispatch.domain.principals import valid_id
from dispatch.entrypoints import appkeys, schemas
from dispatch.entrypoints import areas_contract as ac
from dispatch.entrypoints.auth import principal
from dispatch.entrypoints.jsonio import json_response, read_body
from dispatch.service_layer import areas
from dispatch.service_layer.area_index import CompiledArea
from dispatch.service_layer.areas import AreaBook

AREA_FEATURE = msgspec.json.Decoder(ac.AreaFeature)


def _book(request: web.Request) -> AreaBook:
    return request.app[appkeys.RUNTIME].deps.areas


def area_id(request: web.Request) -> str:
    value = request.match_info["area_id"]
    if not valid_id(value):
        raise schemas.InvalidBody("area id must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    return value


def _polygon(raw: list[list[tuple[float, float]]]) -> Polygon:
    return tuple(tuple((float(x), float(y)) for x, y in ring) for ring in raw)


def area_of(ident: str, feature: ac.AreaFeature) -> Area:
    if feature.id is not msgspec.UNSET and feature.id != ident:
        raise schemas.InvalidBody("the Feature's id is not the path's", field="/id")
    geometry = feature.geometry
    polygons = (
        (_polygon(geometry.coordinates),)
        if isinstance(geometry, ac.PolygonGeometry)
        else tuple(_polygon(p) for p in geometry.coordinates)
    )
    props = feature.properties
    dwell = DEFAULT_DWELL_S if props.dwell_s is msgspec.UNSET else props.dwell_s
    return Area(ident, AreaKind(props.kind), props.name, polygons, dwell, fare=_fare(props.fare))


def _fare(f: ac.AreaFare | msgspec.UnsetType) -> FareTable | None:
    if f is msgspec.UNSET:
        return None
    try:
        return FareTable(f.currency, f.base, f.per_km, f.per_min, f.minimum)
    except ValueError as exc:  # the contract's bounds are the table's: kept as a guard
        raise InvalidArea(f"fare: {exc}") from None


def _fare_view(f: FareTable | None) -> ac.AreaFare | msgspec.UnsetType:
    if f is None:
        return msgspec.UNSET
    return ac.AreaFare(
        currency=f.currency, base=f.base, per_km=f.per_km, per_min=f.per_min, minimum=f.minimum
    )


def stored_view(c: CompiledArea) -> ac.StoredArea:
    a = c.area
    coords = [[[list(p) for p in ring] for ring in polygon] for polygon in a.polygons]
    geometry: ac.PolygonGeometry | ac.MultiPolygonGeometry = (
        ac.PolygonGeometry(coordinates=coords[0])  # type: ignore[arg-type]
        if len(coords) == 1
        else ac.MultiPolygonGeometry(coordinates=coords)  # type: ignore[arg-type]
    )
    return ac.StoredArea(
        type="Feature",
        id=a.id,
        geometry=geometry,
        properties=ac.StoredProperties(
            kind=a.kind.value,
            name=a.name,
            dwell_s=a.dwell_s,
            updated_at=a.updated_at,
            res=c.res,
            inside_cells=len(c.inside),
            edge_cells=len(c.edge),
            fare=_fare_view(a.fare),
        ),
    )


async def put_area(request: web.Request) -> web.Response:
    actor = principal(request)
    ident = area_id(request)
    settings = request.app[appkeys.SETTINGS]
    raw = await read_body(request, settings.max_batch_body_bytes)
    area = area_of(ident, schemas.parse(AREA_FEATURE, raw))
    deps = request.app[appkeys.RUNTIME].deps
    stored = await areas.put_area(deps.areas, actor, area, deps.clock.now_ms())
    return json_response(stored_view(stored))


async def get_area(request: web.Request) -> web.Response:
    found = await areas.get_area(_book(request), principal(request), area_id(request))
    return json_response(stored_view(found))


async def delete_area(request: web.Request) -> web.Response:
    await areas.delete_area(_book(request), principal(request), area_id(request))
    return web.Response(status=204)


async def list_areas(request: web.Request) -> web.Response:
    book = _book(request)
    found = await areas.list_areas(book, principal(request))
    return json_response(ac.AreaList(version=book.version, areas=[stored_view(c) for c in found]))
