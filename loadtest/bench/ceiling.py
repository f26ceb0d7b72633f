"""The HTTP ceiling: a trivial aiohttp + uvloop handler for the location route, nothing behind it.

python -m loadtest.bench.ceiling --port 9000
"""

from __future__ import annotations

import argparse

import uvloop
from aiohttp import web

ACCEPTED = b'{"status":"accepted","seq":0}'


async def location(request: web.Request) -> web.Response:
    await request.read()  # the body is received, as the service must, but not looked at
    return web.Response(body=ACCEPTED, status=202, content_type="application/json")


async def ok(_request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/drivers/{id}/location", location)
    app.router.add_get("/healthz", ok)
    app.router.add_get("/readyz", ok)
    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    uvloop.install()
    web.run_app(make_app(), host=a.host, port=a.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
