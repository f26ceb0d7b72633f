"""Market endpoints: fare quotes for riders; the market view, its event stream and the
surge controls for ops tokens."""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec
from aiohttp import web

from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.quotes import Quote
from dispatch.entrypoints import appkeys, contract, schemas
from dispatch.entrypoints import market_contract as mc
from dispatch.entrypoints.auth import principal, stream_principal
from dispatch.entrypoints.errors import RateLimited
from dispatch.entrypoints.jsonio import json_response, read_body
from dispatch.entrypoints.views_products import product_of
from dispatch.service_layer import market_ops, rider_limits
from dispatch.service_layer.deps import Deps
from dispatch.service_layer.errors import Forbidden
from dispatch.service_layer.market import CellView
from dispatch.service_layer.quotes import make_quote

QUOTE_REQUEST = msgspec.json.Decoder(mc.QuoteRequest)
PIN_REQUEST = msgspec.json.Decoder(mc.PinRequest)
SURGE_SWITCH = msgspec.json.Decoder(mc.SurgeSwitch)
STREAM_MIN_INTERVAL_S = 1.0
KEEPALIVE_S = 15.0


def _deps(request: web.Request) -> Deps:
    return request.app[appkeys.RUNTIME].deps


def _point(p: contract.LatLng | None) -> LatLng | None:
    return None if p is None else LatLng(p.lat, p.lng)


# -- quotes --------------------------------------------------------------------------------
async def post_quote(request: web.Request) -> web.Response:
    actor = principal(request)
    if actor.role is not Role.RIDER:
        raise Forbidden("only a rider token may ask for a quote")
    settings = request.app[appkeys.SETTINGS]
    body = schemas.parse(QUOTE_REQUEST, await read_body(request, settings.max_body_bytes))
    product = product_of(_deps(request).products, body.product)
    # Counted once valid, like nearby: only a quote that reaches the backend costs.
    limiter = request.app[appkeys.QUOTE_LIMITER]
    if not limiter.allow(actor.subject):
        request.app[appkeys.METRICS].refused("quotes")
        raise RateLimited("too many quotes; slow down", limiter.retry_after_s(actor.subject))
    # The same rate on every instance together (the local bucket above sheds a flood on
    # one instance without a backend round trip).
    deps = _deps(request)
    await rider_limits.take(deps.rider_limits, rider_limits.QUOTES, actor.id, deps.clock.now_ms())
    pickup = _point(body.pickup)
    assert pickup is not None
    quote = await make_quote(deps, actor, pickup, _point(body.dropoff), product)
    return json_response(quote_view(quote), 201)


def quote_view(q: Quote) -> mc.Quote:
    f = q.fare
    return mc.Quote(
        id=q.id,
        cell=q.cell,
        pickup_eta_s=q.pickup_eta_s,
        surge=q.surge,
        product=q.product or "",
        fare=mc.Fare(
            currency=f.currency,
            base=f.base,
            per_km=f.per_km,
            per_min=f.per_min,
            minimum=f.minimum,
            estimate_low=None if q.estimate is None else q.estimate.low,
            estimate_high=None if q.estimate is None else q.estimate.high,
        ),
        expires_at=q.expires_at,
    )


# -- the ops view --------------------------------------------------------------------------
def cell_view(c: CellView) -> mc.MarketCell:
    return mc.MarketCell(
        id=c.cell,
        lat=round(c.centre.lat, 6),
        lng=round(c.centre.lng, 6),
        supply=c.supply,
        demand_per_min=c.demand_per_min,
        requests=c.requests,
        no_driver_rate=c.no_driver_rate,
        mean_eta_s=c.mean_eta_s,
        surge=c.surge,
    )


def _product(deps: Deps, name: str | None) -> str | None:
    """A product a market call names (422 unknown_product if not configured), or None."""
    return None if name is None else product_of(deps.products, name)


async def _look(
    deps: Deps, actor: Principal, q: mc.MarketQuery, product: str | None
) -> list[mc.MarketCell]:
    cells = await market_ops.view(deps, actor, LatLng(q.lat, q.lng), q.radius_m, product)
    return [cell_view(c) for c in cells]


async def get_market(request: web.Request) -> web.Response:
    actor = principal(request)
    if actor.role is not Role.OPS:
        raise Forbidden("the market is for ops tokens")
    q = schemas.query(request.query, mc.MarketQuery)
    deps = _deps(request)
    config = deps.market.config
    product = _product(deps, q.product)
    snap = await market_ops.view_and_switch(deps, actor, LatLng(q.lat, q.lng), q.radius_m, product)
    return json_response(
        mc.MarketView(
            res=config.res,
            window_s=config.window.window_ms / 1000,
            surge_enabled=snap.enabled,
            product=product,
            at=snap.at_ms,
            cells=[cell_view(c) for c in snap.cells],
        )
    )


async def market_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `event: market` with every cell first, then the cells that
    changed (and the ids of those gone) every recompute interval, at most once a second."""
    actor, expires = stream_principal(request)
    if actor.role is not Role.OPS:
        raise Forbidden("the market stream is for ops tokens")
    q = schemas.query(request.query, mc.MarketQuery)
    deps = _deps(request)
    product = _product(deps, q.product)
    first = await _look(deps, actor, q, product)  # a bad area is refused before it opens
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass events through unbuffered
        }
    )
    await resp.prepare(request)
    interval_s = max(STREAM_MIN_INTERVAL_S, deps.market.config.interval_ms / 1000)
    closing = request.app[appkeys.STREAMS].closing
    sent = {c.id: c for c in first}
    with contextlib.suppress(ConnectionResetError, ConnectionError):
        await resp.write(_event(first, [], deps.clock.now_ms(), snapshot=True))
        quiet_s = 0.0
        while not closing.is_set():
            wait_s = min(interval_s, expires - time.time())
            if wait_s <= 0:
                break  # the token that opened the stream has expired
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), wait_s)
            if closing.is_set():
                break
            now_cells = {c.id: c for c in await _look(deps, actor, q, product)}
            changed = [c for i, c in now_cells.items() if sent.get(i) != c]
            removed = sorted(set(sent) - set(now_cells))
            sent = now_cells
            if changed or removed:
                await resp.write(_event(changed, removed, deps.clock.now_ms()))
                quiet_s = 0.0
            else:
                quiet_s += interval_s
                if quiet_s >= KEEPALIVE_S:
                    await resp.write(b": keep-alive\n\n")
                    quiet_s = 0.0
    return resp


def _event(
    cells: list[mc.MarketCell], removed: list[str], at: int, snapshot: bool = False
) -> bytes:
    delta = mc.MarketDelta(
        cells=cells, removed=removed, at=at, snapshot=True if snapshot else msgspec.UNSET
    )
    return b"event: market\ndata: " + msgspec.json.encode(delta) + b"\n\n"


# -- controls ------------------------------------------------------------------------------
async def post_pins(request: web.Request) -> web.Response:
    actor = principal(request)
    if actor.role is not Role.OPS:
        raise Forbidden("surge controls are for ops tokens")
    settings = request.app[appkeys.SETTINGS]
    body = schemas.parse(PIN_REQUEST, await read_body(request, settings.max_body_bytes))
    deps = _deps(request)
    product = _product(deps, body.product)
    count, until = await market_ops.pin(
        deps, actor, body.cells, body.multiplier, body.ttl_s, mc.MAX_PINNED_CELLS, product
    )
    answer = mc.Pinned(cells=count, multiplier=body.multiplier, until=until, product=product)
    return json_response(answer)


async def put_surge_switch(request: web.Request) -> web.Response:
    actor = principal(request)
    if actor.role is not Role.OPS:
        raise Forbidden("surge controls are for ops tokens")
    settings = request.app[appkeys.SETTINGS]
    body = schemas.parse(SURGE_SWITCH, await read_body(request, settings.max_body_bytes))
    enabled = await market_ops.set_enabled(_deps(request), actor, body.enabled)
    return json_response(mc.SurgeSwitch(enabled=enabled))
