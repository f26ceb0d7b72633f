"""Operations endpoints, no auth: liveness, readiness, metrics, the OpenAPI document."""

from __future__ import annotations

import asyncio

from aiohttp import web

from dispatch.entrypoints import appkeys, contract
from dispatch.entrypoints.jsonio import error_response, json_response, raw_json_response
from dispatch.entrypoints.metrics import CONTENT_TYPE


async def healthz(request: web.Request) -> web.Response:
    # Alive means the event loop answers; the backend is readyz's business.
    return json_response(contract.Health(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[appkeys.RUNTIME]
    # Ready means requests can be served within their deadlines: a Redis whose round trip
    # takes half a call's timeout answers each call, yet a ride request (a dozen calls)
    # would run out of time, so the balancer should send this instance nothing new.
    budget_s = request.app[appkeys.SETTINGS].redis_timeout_s / 2
    try:
        async with asyncio.timeout(budget_s):
            await runtime.ping()
    except TimeoutError:
        message = f"{runtime.backend}: no answer within {budget_s:g} s"
        return error_response(503, "backend_unavailable", message)
    except Exception as exc:
        return error_response(503, "backend_unavailable", f"{runtime.backend}: {exc}")
    return json_response(contract.Ready(status="ready", backend=runtime.backend))


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[appkeys.METRICS].render(),
        headers={"Content-Type": CONTENT_TYPE, "X-Content-Type-Options": "nosniff"},
    )


async def openapi(request: web.Request) -> web.Response:
    return raw_json_response(request.app[appkeys.OPENAPI])
