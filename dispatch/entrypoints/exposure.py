"""Secure by default: the built-in development JWT secret is in the source, so anyone can
mint tokens for a service that uses it. Such a service may listen on loopback only,
unless the operator says, with a flag named for what it is, that this is what they want."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from dispatch.settings import DEV_JWT_SECRET, Settings

INSECURE_FLAG = "--insecure-dev-secret"
INSECURE_ENV = "DISPATCH_INSECURE_DEV_SECRET"
_TRUE = {"1", "true", "yes", "on"}


def is_loopback(host: str) -> bool:
    """Only what certainly stays on this machine; a name other than localhost may resolve
    anywhere, so it counts as exposed."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def insecure_allowed(flag: bool, env: Mapping[str, str]) -> bool:
    return flag or env.get(INSECURE_ENV, "").strip().lower() in _TRUE


def dev_secret_refusal(settings: Settings, allowed: bool) -> str | None:
    """One line saying why `serve` must not start, or None when it may."""
    if settings.jwt_secret != DEV_JWT_SECRET or is_loopback(settings.host) or allowed:
        return None
    return (
        f"refusing to listen on {settings.host} with the built-in development JWT secret "
        f"(anyone can mint tokens with it): set DISPATCH_JWT_SECRET, listen on 127.0.0.1, "
        f"or pass {INSECURE_FLAG} ({INSECURE_ENV}=1) if you really mean it"
    )
