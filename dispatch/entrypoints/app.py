"""The aiohttp app factory: state under typed keys, every resource in a cleanup_ctx."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from aiohttp import web

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.bootstrap import bootstrap
from dispatch.entrypoints import (
    appkeys,
    background,
    ops_feed,
    ops_stream,
    sse,
    views_ops_map,
    ws_driver,
)
from dispatch.entrypoints.area_streams import area_event_follower, area_events
from dispatch.entrypoints.areas_task import area_refresher
from dispatch.entrypoints.backend_probe import BackendProbe
from dispatch.entrypoints.edge import edge, stamp
from dispatch.entrypoints.metrics import Metrics
from dispatch.entrypoints.openapi import document
from dispatch.entrypoints.ratelimit import RateLimiter
from dispatch.entrypoints.routes import ROUTES, route_table
from dispatch.entrypoints.streams import Streams
from dispatch.entrypoints.surge_task import surge_job
from dispatch.entrypoints.views_market import market_stream
from dispatch.entrypoints.views_region_split import migrations
from dispatch.entrypoints.window_task import window_job
from dispatch.service_layer.deadlines import run_sweeper
from dispatch.service_layer.index_sweep import run_index_sweeper
from dispatch.settings import Settings, from_env

# Streams live long by design: no request deadline for them.
STREAMS = (
    ws_driver.driver_stream,
    sse.ride_events,
    ops_stream.ops_stream,
    market_stream,
    area_events,
)


async def _backend(app: web.Application) -> AsyncIterator[None]:
    async with bootstrap(app[appkeys.SETTINGS], observer=app[appkeys.METRICS]) as runtime:
        app[appkeys.RUNTIME] = runtime
        yield


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    deps, settings = app[appkeys.RUNTIME].deps, app[appkeys.SETTINGS]
    async with background.running(
        ("timer-sweeper", run_sweeper(deps, settings.sweep_interval_s)),
        ("index-sweeper", run_index_sweeper(deps, settings.index_sweep_interval_s)),
    ):
        yield


async def _close_streams(app: web.Application) -> None:
    await app[appkeys.STREAMS].close_all()


def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or from_env()
    metrics = Metrics()
    app = web.Application(
        client_max_size=settings.max_batch_body_bytes,
        middlewares=[edge(metrics, settings.request_timeout_s, STREAMS)],
    )
    app[appkeys.SETTINGS] = settings
    app[appkeys.METRICS] = metrics
    app[appkeys.TOKENS] = TokenCodec(settings.jwt_secret)
    app[appkeys.LOCATION_LIMITER] = RateLimiter(
        settings.driver_rate_per_s, settings.driver_rate_burst
    )
    app[appkeys.NEARBY_LIMITER] = RateLimiter(
        settings.nearby_rate_per_s, settings.nearby_rate_burst
    )
    app[appkeys.STREAMS] = Streams(settings.max_streams_per_owner)
    app[appkeys.QUOTE_LIMITER] = RateLimiter(settings.quote_rate_per_s, settings.quote_rate_burst)
    app[appkeys.OPENAPI] = orjson.dumps(document(settings, ROUTES))
    app[appkeys.BACKEND_PROBE] = BackendProbe()
    app.cleanup_ctx.append(_backend)
    app.cleanup_ctx.append(migrations)  # region split changes (geoindex/split.py)
    app.cleanup_ctx.append(_sweeper)
    app.cleanup_ctx.append(surge_job)
    app.cleanup_ctx.append(window_job)
    app.cleanup_ctx.append(ops_feed.run_feed)
    app.cleanup_ctx.append(area_refresher)
    app.cleanup_ctx.append(area_event_follower)
    app.on_shutdown.append(_close_streams)
    app.on_response_prepare.append(stamp(settings.instance))
    app.router.add_routes(route_table(ROUTES))
    app.router.add_routes([views_ops_map.ASSETS])  # the ops map's files: not API
    return app
