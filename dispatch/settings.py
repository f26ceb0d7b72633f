"""Service settings: read once, from DISPATCH_* environment variables and CLI flags, into
one typed object that the app factory receives."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

DEV_JWT_SECRET = "dispatch-dev-secret-change-me-0123456789"  # noqa: S105 - a documented dev default


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    redis_url: str | None = None
    redis_cluster_url: str | None = None
    instance_id: str | None = None  # default: <hostname>-<port>
    jwt_secret: str = DEV_JWT_SECRET
    offer_timeout_s: float = 15.0
    max_attempts: int = 3
    rider_max_active_rides: int = 2  # no one rider holds many drivers at once
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


def _convert(kind: Any, raw: str) -> Any:
    text = str(kind)
    if "int" in text and "str" not in text:
        return int(raw)
    if "float" in text:
        return float(raw)
    return raw


def from_env(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """DISPATCH_<FIELD> variables (for example DISPATCH_PORT), then explicit overrides."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = env.get(f"DISPATCH_{f.name.upper()}")
        if raw is not None and raw != "":
            values[f.name] = _convert(f.type, raw)
    settings = Settings(**values).with_overrides(**overrides)
    if settings.redis_url and settings.redis_cluster_url:
        raise ValueError("give a Redis URL or a Redis Cluster URL, not both")
    return settings
