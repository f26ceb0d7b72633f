"""Who is calling: the verified bearer token's principal, or 401."""

from __future__ import annotations

import jwt
from aiohttp import web

from dispatch.domain.principals import Principal
from dispatch.entrypoints import appkeys
from dispatch.entrypoints.errors import Unauthorized


def principal(request: web.Request, *, allow_query: bool = False) -> Principal:
    """From `Authorization: Bearer <jwt>`; for WebSockets and event streams (browsers
    cannot set headers on those) also from the `access_token` query parameter."""
    return request.app[appkeys.TOKENS].verify(_token(request, allow_query))


def expires_at(request: web.Request) -> float:
    """When the caller's token, verified by `principal` already, runs out (epoch
    seconds): a stream it opened must not outlive it."""
    claims = jwt.decode(_token(request, True), options={"verify_signature": False})
    return float(claims["exp"])


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
