"""Who is calling: the verified bearer token's principal, or 401."""

from __future__ import annotations

from aiohttp import web

from dispatch.domain.principals import Principal
from dispatch.entrypoints import appkeys
from dispatch.entrypoints.errors import Unauthorized


def principal(request: web.Request, app: web.Application | None = None) -> Principal:
    """From `Authorization: Bearer <jwt>`. `app`: the request's, if the caller has it
    (request.app is a lookup of its own)."""
    return (app or request.app)[appkeys.TOKENS].verify(_token(request, allow_query=False))


def stream_principal(request: web.Request) -> tuple[Principal, float]:
    """For WebSockets and event streams (browsers cannot set headers on those) also from
    the `access_token` query parameter; with the token's expiry (epoch seconds), which
    the stream it opens must not outlive."""
    return request.app[appkeys.TOKENS].verify_until(_token(request, allow_query=True))


def _token(request: web.Request, allow_query: bool) -> str:
    header = request.headers.get("Authorization")
    token: str | None = None
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>'")
        token = value.strip()
    elif allow_query:
        token = request.query.get("access_token")
    if not token:
        raise Unauthorized("a bearer token is required")
    return token
