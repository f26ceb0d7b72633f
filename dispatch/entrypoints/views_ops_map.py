"""GET /ops (the live ops map's page) and GET /ops/assets/{name} (its bundle, built by
scripts/build-ops from web/ops and shipped in the package). The page itself needs no
token: it reads the ops token from its URL fragment, which browsers never send, and
opens /v1/ops/stream with it."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from aiohttp import web

from dispatch.entrypoints import appkeys
from dispatch.service_layer.errors import NotFound
from dispatch.settings import Settings

STATIC = Path(__file__).resolve().parent / "static" / "ops"
IMMUTABLE = "public, max-age=31536000, immutable"  # asset names carry their content hash
_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}


@functools.cache
def _assets() -> frozenset[str]:
    manifest = json.loads((STATIC / "manifest.json").read_text())
    return frozenset(manifest["assets"])


@functools.cache
def _template() -> str:
    return (STATIC / "index.html").read_text()


def page_config(settings: Settings) -> str:
    config = {
        "area": {"lat": settings.ops_lat, "lng": settings.ops_lng},
        "basemap_style_url": settings.ops_basemap_style_url,
    }
    # Inside <script type="application/json">: no "<" may end the element early.
    return json.dumps(config).replace("<", "\\u003c")


def content_security_policy(settings: Settings) -> str:
    """Nothing but this origin, unless a basemap is configured (its style, tiles and
    glyphs then come from elsewhere over HTTPS)."""
    remote = " https:" if settings.ops_basemap_style_url else ""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            f"img-src 'self' data: blob:{remote}",
            f"connect-src 'self'{remote}",
            "worker-src 'self' blob:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


async def ops_page(request: web.Request) -> web.Response:
    settings = request.app[appkeys.SETTINGS]
    html = _template().replace("%CONFIG%", page_config(settings))
    return web.Response(
        text=html,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Cache-Control": "no-cache",  # it names the current assets
            "Content-Security-Policy": content_security_policy(settings),
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def ops_asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in _assets():  # only the manifest's names: no path ever reaches the disk
        raise NotFound("no such asset")
    return web.FileResponse(
        STATIC / "assets" / name,
        headers={
            "Content-Type": _TYPES.get(Path(name).suffix, "application/octet-stream"),
            "Cache-Control": IMMUTABLE,
            "X-Content-Type-Options": "nosniff",
        },
    )


# Outside routes.py's API table (and so outside /openapi.json): files of a page, not API.
ASSETS = web.get("/ops/assets/{name}", ops_asset, allow_head=False)
