"""Service settings: read once, from DISPATCH_* environment variables and CLI flags, into
one typed object that the app factory receives. Each value is converted by its field's
type and checked by its rule; a bad one is a SettingsError naming where it came from."""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, get_type_hints

from dispatch.domain.products import ProductError
from dispatch.durability import parse_durability
from dispatch.products_config import load_catalog

DEV_JWT_SECRET = "dispatch-dev-secret-change-me-0123456789"  # noqa: S105 - a documented dev default
MIN_JWT_SECRET_BYTES = 32  # HS256's key should be no shorter than its hash (RFC 7518 3.2)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080  # 0: any free port (tests)
    redis_url: str | None = None
    redis_cluster_url: str | None = None
    instance_id: str | None = None  # default: <hostname>-<port>
    jwt_secret: str = DEV_JWT_SECRET
    offer_timeout_s: float = 15.0
    max_attempts: int = 3
    rider_max_active_rides: int = 2  # no one rider holds many drivers at once
    # Ride requests that would make a new ride, per rider, counted in the backend (so on
    # every instance together): a token bucket. Quotes have the same, from quote_rate_*.
    ride_request_rate_per_s: float = 0.5
    ride_request_rate_burst: int = 10
    # Matching (docs/api.md, "Matching modes"): 0 offers each request the nearest free
    # driver at once; above 0 (the default, 2 s windows), requests wait (status searching)
    # for their region's window, solved every match_window_ms as one assignment by one
    # instance at a time (a lease of match_lease_windows windows), each rider drawing up
    # to match_candidates drivers within match_radius_m; a ride still searching after
    # match_max_wait_s ends no_driver (10 s: holding riders 30 s matched 1.4 % more at
    # tight supply but made their mean wait 2.7 times as long, docs/benchmarks.md). A
    # client's `Prefer: wait=N` holds the answer at most prefer_wait_max_s.
    match_window_ms: int = 2000
    match_max_wait_s: float = 10.0
    match_candidates: int = 16
    match_radius_m: float = 5_000.0
    match_lease_windows: int = 5
    prefer_wait_max_s: float = 30.0
    driver_ttl_s: float = 30.0  # a driver silent longer is not searched nor dispatched
    # Geo index regions: H3 cells of this resolution, each one Redis Cluster slot
    # (docs/capacity.md: a finer one spreads a dense city over more slots). Every instance
    # on one Redis must use the same value.
    region_res: int = 5
    redis_timeout_s: float = 2.0
    # One HTTP request's whole time: a slow Redis that answers each call within
    # redis_timeout_s must still not hold a request for a dozen of them. Generous by
    # default, so that a burst queued on a saturated instance is served, not shed; set it
    # to the latency objective of the deployment.
    request_timeout_s: float = 15.0
    # Limits (docs/api.md)
    max_body_bytes: int = 16 * 1024
    max_batch_body_bytes: int = 512 * 1024
    max_batch_items: int = 1000
    max_ws_message_bytes: int = 4 * 1024
    driver_rate_per_s: float = 10.0
    driver_rate_burst: int = 20
    nearby_rate_per_s: float = 5.0  # per caller: a map refreshing every second or two
    nearby_rate_burst: int = 10
    # Driver WebSockets per driver, rider event streams per rider, on one instance; a new
    # one above this closes the oldest.
    max_streams_per_owner: int = 4
    # Operations
    shutdown_timeout_s: float = 10.0
    sweep_interval_s: float = 0.1
    index_sweep_interval_s: float = 5.0  # silent drivers leave the geo index's memory
    # The ops map (GET /ops, /v1/ops/stream): the area it watches, at most this many
    # drivers (nearest the centre first), one look every ops_interval_s while a page is
    # open. No basemap by default (nothing leaves the service); a MapLibre style URL here
    # draws one under the layers.
    ops_lat: float = 52.52
    ops_lng: float = 13.405
    ops_radius_m: float = 10_000.0
    ops_max_drivers: int = 20_000
    ops_interval_s: float = 1.0
    ops_basemap_style_url: str | None = None
    # The market (docs/api.md, "Market"): demand counted per H3 cell of market_res in
    # buckets over a window; surge recomputed per region by one instance at a time (a
    # lease: another takes over within surge_lease_s); quotes lock a price for quote_ttl_s.
    market_res: int = 8
    market_bucket_s: float = 5.0
    market_window_s: float = 60.0
    surge_cap: float = 3.0
    surge_interval_s: float = 2.0
    surge_lease_s: float = 10.0
    quote_ttl_s: float = 120.0
    quote_rate_per_s: float = 1.0  # per rider: a rider checking prices now and then
    quote_rate_burst: int = 10
    fare_currency: str = "EUR"  # the default fare table (no money is charged here)
    fare_base: float = 2.5
    fare_per_km: float = 1.2
    fare_per_min: float = 0.3
    fare_minimum: float = 6.0
    # Areas (docs/api.md, "Areas"): each instance reads the areas' version this often and
    # recompiles what changed.
    areas_refresh_s: float = 1.0
    area_events_maxlen: int = 100_000  # the area event stream keeps about this many
    # Service logs: one JSON object a line ("json") or plain text ("text"), at this level.
    log_level: str = "INFO"
    log_format: str = "json"
    # Replica-acknowledged critical writes (docs/reliability.md): "off", or
    # "<replicas>:<timeout_ms>" (e.g. "1:200"): reservations, accepts, a ride's creation
    # and end, and releases are answered only once that many replicas have them (WAIT),
    # else 503 durability_timeout. Off by default: while a master has no replica (after a
    # failover, until the dead node is back as a replica) every such write would fail.
    durable_writes: str = "off"
    # Products (docs/api.md, "Products"): the built-in catalog (economy, comfort, xl, wav),
    # or a JSON file of products; a ride request naming no product asks for the default,
    # and a driver that never set a vehicle serves it.
    products_file: str | None = None
    default_product: str = "economy"
    # New ride ids: "rider_slot" (in their rider's Redis Cluster slot, five hex digits
    # longer) or "plain" (as before them: for a rolling upgrade, docs/api.md).
    ride_ids: str = "rider_slot"

    @property
    def backend(self) -> str:
        if self.redis_cluster_url:
            return "redis-cluster"
        return "redis" if self.redis_url else "embedded"

    @property
    def instance(self) -> str:
        return self.instance_id or f"{socket.gethostname()}-{self.port}"

    def with_overrides(self, **values: Any) -> Settings:
        return replace(self, **{k: v for k, v in values.items() if v is not None})


class SettingsError(ValueError):
    """One line for the operator: which setting, and what is wrong with it."""


# -- rules: each says what is wrong with a value, or None ---------------------------------
Rule = Callable[[Any], str | None]


def between(lo: float, hi: float) -> Rule:
    return lambda v: None if lo <= v <= hi else f"must be from {lo:g} to {hi:g}, not {v!r}"


def positive(v: float) -> str | None:
    return None if v > 0 else f"must be above 0, not {v!r}"


def at_least_one(v: int) -> str | None:
    return None if v >= 1 else f"must be at least 1, not {v!r}"


def non_empty(v: str) -> str | None:
    return None if v else "must not be empty"


def one_of(*allowed: str) -> Rule:
    return lambda v: None if v in allowed else f"must be one of {', '.join(allowed)}, not {v!r}"


def durable_writes(v: str) -> str | None:
    try:
        parse_durability(v)
    except ValueError as exc:
        return str(exc)
    return None


def jwt_secret(v: str) -> str | None:
    size = len(v.encode())
    if size >= MIN_JWT_SECRET_BYTES:
        return None
    return f"must be at least {MIN_JWT_SECRET_BYTES} bytes for HS256, not {size}"


RULES: dict[str, Rule] = {
    "host": non_empty,
    "port": between(0, 65535),
    "jwt_secret": jwt_secret,
    "offer_timeout_s": positive,
    "max_attempts": at_least_one,
    "rider_max_active_rides": at_least_one,
    "ride_request_rate_per_s": positive,
    "ride_request_rate_burst": at_least_one,
    "match_window_ms": between(0, 60_000),
    "match_max_wait_s": between(1, 3600),
    "match_candidates": between(1, 100),  # geoindex.MAX_K
    "match_radius_m": between(1, 50_000),  # geoindex.MAX_RADIUS_M
    "match_lease_windows": between(2, 100),  # at least two windows, so renewals land
    "prefer_wait_max_s": between(0, 120),
    "driver_ttl_s": positive,
    "ride_ids": one_of("rider_slot", "plain"),
    "region_res": between(0, 10),  # no finer than the index's search cells (res 10)
    "redis_timeout_s": positive,
    "request_timeout_s": positive,
    "max_body_bytes": at_least_one,
    "max_batch_body_bytes": at_least_one,
    "max_batch_items": at_least_one,
    "max_ws_message_bytes": at_least_one,
    "driver_rate_per_s": positive,
    "driver_rate_burst": at_least_one,
    "nearby_rate_per_s": positive,
    "nearby_rate_burst": at_least_one,
    "max_streams_per_owner": at_least_one,
    "log_level": one_of("DEBUG", "INFO", "WARNING", "ERROR"),
    "log_format": one_of("json", "text"),
    "shutdown_timeout_s": positive,
    "sweep_interval_s": positive,
    "index_sweep_interval_s": positive,
    "ops_lat": between(-90, 90),
    "ops_lng": between(-180, 180),
    "ops_radius_m": between(0, 50_000),  # geoindex.MAX_RADIUS_M
    "ops_max_drivers": between(1, 50_000),  # geoindex.MAX_WITHIN
    "ops_interval_s": positive,
    "market_res": between(0, 15),  # and not coarser than region_res (bootstrap checks)
    "market_bucket_s": positive,
    "market_window_s": positive,
    "surge_cap": between(1, 10),
    "surge_interval_s": positive,
    "surge_lease_s": positive,
    "quote_ttl_s": between(1, 3600),
    "quote_rate_per_s": positive,
    "quote_rate_burst": at_least_one,
    "fare_base": between(0, 10_000),
    "fare_per_km": between(0, 10_000),
    "fare_per_min": between(0, 10_000),
    "fare_minimum": between(0, 10_000),
    "areas_refresh_s": between(0.05, 60),
    "area_events_maxlen": between(100, 10_000_000),
    "durable_writes": durable_writes,
    "default_product": non_empty,
}


# -- conversion by the field's type --------------------------------------------------------
_INT = re.compile(r"[+-]?\d+")


def _int(raw: str) -> int:
    if not _INT.fullmatch(raw.strip()):
        raise ValueError("must be a whole number")
    return int(raw)


def _float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number") from None
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


_CONVERT: dict[Any, Callable[[str], Any]] = {
    int: _int,
    float: _float,
    str: str,
    str | None: str,  # unset is the field's default, None
}
_TYPES = get_type_hints(Settings)


def env_name(name: str) -> str:
    return f"DISPATCH_{name.upper()}"


def from_env(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """DISPATCH_<FIELD> variables (for example DISPATCH_PORT), then explicit overrides
    (the CLI's flags), checked; SettingsError names the first bad one."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f in fields(Settings):
        var = env_name(f.name)
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        try:
            values[f.name] = _CONVERT[_TYPES[f.name]](raw)
        except ValueError as exc:
            raise SettingsError(f"{var} {exc}, not {raw[:40]!r}") from None
        sources[f.name] = var
    for name, value in overrides.items():
        if value is not None:
            values[name] = value
            sources[name] = "--" + name.replace("_", "-")
    settings = Settings(**values)
    check(settings, sources)
    return settings


def check(settings: Settings, sources: Mapping[str, str] | None = None) -> None:
    """Every rule; `sources` says where a value came from (default: its variable)."""
    where = dict(sources or {})
    for name, rule in RULES.items():
        problem = rule(getattr(settings, name))
        if problem is not None:
            raise SettingsError(f"{where.get(name, env_name(name))} {problem}")
    durability = parse_durability(settings.durable_writes)
    if durability is not None and durability.timeout_ms >= settings.redis_timeout_s * 1000:
        raise SettingsError(  # the socket would time out before WAIT answers
            f"DISPATCH_DURABLE_WRITES timeout ({durability.timeout_ms} ms) must be below"
            f" DISPATCH_REDIS_TIMEOUT_S ({settings.redis_timeout_s:g} s)"
        )
    try:
        load_catalog(settings.products_file, settings.default_product)
    except ProductError as exc:
        var = "DISPATCH_PRODUCTS_FILE" if settings.products_file else "DISPATCH_DEFAULT_PRODUCT"
        raise SettingsError(f"{where.get('products_file', var)} {exc}") from None
    if settings.redis_url and settings.redis_cluster_url:
        raise SettingsError(
            "DISPATCH_REDIS_URL and DISPATCH_REDIS_CLUSTER_URL: give one or the other, not both"
        )
