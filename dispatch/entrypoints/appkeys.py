"""Every piece of app state, under one typed key each."""

from __future__ import annotations

import asyncio

from aiohttp import web

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.bootstrap import Runtime
from dispatch.entrypoints.backend_probe import BackendProbe
from dispatch.entrypoints.metrics import Metrics
from dispatch.entrypoints.ratelimit import RateLimiter
from dispatch.entrypoints.streams import Streams
from dispatch.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", Runtime)
METRICS = web.AppKey("metrics", Metrics)
TOKENS = web.AppKey("tokens", TokenCodec)
LOCATION_LIMITER = web.AppKey("location_limiter", RateLimiter)  # per driver
NEARBY_LIMITER = web.AppKey("nearby_limiter", RateLimiter)  # map queries, per caller
STREAMS = web.AppKey("streams", Streams)
QUOTE_LIMITER = web.AppKey("quote_limiter", RateLimiter)  # fare quotes, per rider
OPENAPI = web.AppKey("openapi", bytes)  # /openapi.json, generated once per app
BACKEND_PROBE = web.AppKey("backend_probe", BackendProbe)  # before a driver's upgrade
# region split changes running on this instance, by parent, each ending in its failure
# or None (views_region_split.py)
SPLITS = web.AppKey("splits", dict[str, asyncio.Task[Exception | None]])
