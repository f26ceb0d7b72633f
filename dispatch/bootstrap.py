"""Wire the adapters for one backend (embedded, Redis, Redis Cluster) into the use cases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import RedisCluster

from dispatch.adapters import (
    redis_areas,
    redis_deadlines,
    redis_drivers,
    redis_idempotency,
    redis_market,
    redis_presence,
    redis_queues,
    redis_rider_limits,
    redis_rider_rides,
    redis_rides,
)
from dispatch.adapters.clock import WallClock
from dispatch.adapters.durable import DurableScripts
from dispatch.adapters.fanout import MemoryNotifier
from dispatch.adapters.memory_area_events import MemoryAreaEventLog
from dispatch.adapters.memory_areas import MemoryAreaStore
from dispatch.adapters.memory_deadlines import MemoryDeadlineQueue
from dispatch.adapters.memory_drivers import MemoryDriverStore
from dispatch.adapters.memory_eta import MemoryEtaStore
from dispatch.adapters.memory_idempotency import MemoryIdempotencyStore
from dispatch.adapters.memory_market import MemoryMarketStore, MemoryQuoteStore
from dispatch.adapters.memory_pending import MemoryPendingStore
from dispatch.adapters.memory_presence import MemoryPresenceStore
from dispatch.adapters.memory_queues import MemoryQueueStore
from dispatch.adapters.memory_rider_limits import MemoryLimitStore
from dispatch.adapters.memory_rider_rides import MemoryRiderRideStore
from dispatch.adapters.memory_rides import MemoryRideStore
from dispatch.adapters.pubsub_notifier import PubSubNotifier
from dispatch.adapters.redis_area_events import RedisAreaEventLog
from dispatch.adapters.redis_areas import RedisAreaStore
from dispatch.adapters.redis_client import connect
from dispatch.adapters.redis_deadlines import RedisDeadlineQueue
from dispatch.adapters.redis_drivers import RedisDriverStore
from dispatch.adapters.redis_eta import RedisEtaStore
from dispatch.adapters.redis_idempotency import RedisIdempotencyStore
from dispatch.adapters.redis_market import RedisMarketStore, RedisQuoteStore
from dispatch.adapters.redis_pending import RedisPendingStore
from dispatch.adapters.redis_presence import RedisPresenceStore
from dispatch.adapters.redis_queues import RedisQueueStore
from dispatch.adapters.redis_rider_rides import RedisRiderRideStore
from dispatch.adapters.redis_rides import RedisRideStore
from dispatch.domain.fares import FareTable
from dispatch.domain.market import CountWindow, SurgePolicy
from dispatch.domain.matching import MatchingPolicy
from dispatch.durability import parse_durability
from dispatch.products_config import load_catalog
from dispatch.service_layer.areas import AreaBook
from dispatch.service_layer.deps import Deps, NullObserver
from dispatch.service_layer.eta import EtaModel
from dispatch.service_layer.geofence import Geofence
from dispatch.service_layer.market import Market, MarketConfig
from dispatch.service_layer.match_window import Batching, PendingStore, WindowConfig
from dispatch.service_layer.ports import Clock, Observer
from dispatch.service_layer.rider_limits import QUOTES, RIDES, LimitStore, Rate, RiderLimits
from dispatch.settings import Settings
from geoindex import (
    CoalescingGeoIndex,
    MemoryGeoIndex,
    RedisGeoIndex,
    ScriptRunner,
    SearchConfig,
    translated,
)

# Every script of the stores: loaded on every primary before the first request.
STORE_SCRIPTS = (
    *redis_drivers.SCRIPTS,
    *redis_rides.SCRIPTS,
    *redis_rider_rides.SCRIPTS,
    *redis_rider_limits.SCRIPTS,
    *redis_idempotency.SCRIPTS,
    *redis_deadlines.SCRIPTS,
    *redis_market.SCRIPTS,
    *redis_areas.SCRIPTS,
    *redis_presence.SCRIPTS,
    *redis_queues.SCRIPTS,
)


@dataclass(frozen=True, slots=True)
class Runtime:
    deps: Deps
    backend: str
    ping: Callable[[], Awaitable[None]]  # raises BackendUnavailable when unreachable


def policy_for(settings: Settings) -> MatchingPolicy:
    return MatchingPolicy(
        max_attempts=settings.max_attempts,
        offer_timeout_ms=round(settings.offer_timeout_s * 1000),
        max_active_rides=settings.rider_max_active_rides,
    )


def market_config_for(settings: Settings) -> MarketConfig:
    """ValueError names the setting at fault."""
    try:
        return MarketConfig(
            res=settings.market_res,
            region_res=settings.region_res,
            window=CountWindow(
                round(settings.market_bucket_s * 1000), round(settings.market_window_s * 1000)
            ),
            policy=SurgePolicy(cap=settings.surge_cap),
            fare=FareTable(
                settings.fare_currency,
                settings.fare_base,
                settings.fare_per_km,
                settings.fare_per_min,
                settings.fare_minimum,
            ),
            quote_ttl_ms=round(settings.quote_ttl_s * 1000),
            interval_ms=round(settings.surge_interval_s * 1000),
            lease_ms=round(settings.surge_lease_s * 1000),
            # Counted and priced per product of the catalog (read once per process).
            products=tuple(load_catalog(settings.products_file, settings.default_product).products),
        )
    except ValueError as exc:
        raise ValueError(f"market settings (DISPATCH_MARKET_*, SURGE_*, FARE_*): {exc}") from None


def batching_for(settings: Settings, store: PendingStore) -> Batching | None:
    """None in immediate mode (DISPATCH_MATCH_WINDOW_MS=0)."""
    if settings.match_window_ms == 0:
        return None
    config = WindowConfig(
        window_ms=settings.match_window_ms,
        max_wait_ms=round(settings.match_max_wait_s * 1000),
        candidates=settings.match_candidates,
        radius_m=settings.match_radius_m,
        lease_windows=settings.match_lease_windows,
    )
    return Batching(config, store, settings.region_res)


def rider_limits_for(settings: Settings, store: LimitStore) -> RiderLimits:
    rides = Rate(settings.ride_request_rate_per_s, settings.ride_request_rate_burst)
    quotes = Rate(settings.quote_rate_per_s, settings.quote_rate_burst)
    return RiderLimits(store, {RIDES: rides, QUOTES: quotes})


async def _nothing() -> None:
    return None


@asynccontextmanager
async def bootstrap(
    settings: Settings,
    *,
    clock: Clock | None = None,
    observer: Observer | None = None,
    index_prefix: str = "gi",
) -> AsyncIterator[Runtime]:
    """`index_prefix`: the Redis key prefix of the geo index (the stores find a driver's
    last fix through the index, whatever its prefix)."""
    clock = clock or WallClock()
    observer = observer or NullObserver()
    ttl_ms = round(settings.driver_ttl_s * 1000)
    search = SearchConfig(region_res=settings.region_res)
    policy = policy_for(settings)
    catalog = load_catalog(settings.products_file, settings.default_product)
    # A driver that never set a vehicle serves the default product.
    served = (catalog.default,)
    url = settings.redis_cluster_url or settings.redis_url
    if url is None:
        index = MemoryGeoIndex(
            ttl_ms=ttl_ms, clock=clock.now_ms, config=search, default_products=served
        )
        deps = Deps(
            index=index,
            drivers=MemoryDriverStore(index),
            # A new ride's Idempotency-Key answer is stored with it (RideStore.create).
            rides=MemoryRideStore(
                clock.now_ms, answers=(answers := MemoryIdempotencyStore(clock.now_ms))
            ),
            # One set of rider buckets: a ride request's token is taken with its count.
            active_rides=MemoryRiderRideStore(buckets := MemoryLimitStore()),
            rider_limits=rider_limits_for(settings, buckets),
            idempotency=answers,
            deadlines=MemoryDeadlineQueue(),
            notifier=MemoryNotifier(),
            clock=clock,
            policy=policy,
            observer=observer,
            market=Market(
                MemoryMarketStore(clock.now_ms),
                MemoryQuoteStore(clock.now_ms),
                market_config_for(settings),
            ),
            eta=EtaModel(MemoryEtaStore(), region_res=settings.region_res),
            batching=batching_for(settings, MemoryPendingStore(clock.now_ms)),
            products=catalog,
            ride_ids_in_rider_slot=settings.ride_ids == "rider_slot",
            areas=(book := AreaBook(MemoryAreaStore())),
            fences=Geofence(
                book,
                MemoryPresenceStore(),
                MemoryAreaEventLog(settings.area_events_maxlen),
                MemoryQueueStore(),
            ),
        )
        yield Runtime(deps, settings.backend, _nothing)
        return
    client = connect(
        url, cluster=bool(settings.redis_cluster_url), timeout_s=settings.redis_timeout_s
    )
    notifier = PubSubNotifier(client, url)
    redis_index = RedisGeoIndex(
        client,
        ttl_ms=ttl_ms,
        clock=clock.now_ms,
        config=search,
        prefix=index_prefix,
        default_products=served,
    )
    scripts = ScriptRunner(client, STORE_SCRIPTS)
    durability = parse_durability(settings.durable_writes)
    durable = None if durability is None else DurableScripts(scripts, durability)

    async def ping() -> None:
        with translated():
            await client.ping()

    try:
        if isinstance(client, RedisCluster):
            # Learn the slot map before any command: redis-py's lazy first initialisation
            # races when many commands start at once (connections closed under them).
            with translated():
                await client.initialize()
        await scripts.load()
        await notifier.start()
        deps = Deps(
            # Fixes arriving one per request or frame travel to Redis in shared batches.
            index=CoalescingGeoIndex(redis_index),
            drivers=RedisDriverStore(scripts, redis_index, durable=durable),
            rides=RedisRideStore(scripts, durable=durable),
            active_rides=RedisRiderRideStore(scripts),
            rider_limits=rider_limits_for(settings, redis_rider_limits.RedisLimitStore(scripts)),
            idempotency=RedisIdempotencyStore(scripts),
            deadlines=RedisDeadlineQueue(scripts),
            notifier=notifier,
            clock=clock,
            policy=policy,
            observer=observer,
            market=Market(
                RedisMarketStore(scripts),
                RedisQuoteStore(client, clock.now_ms),
                market_config_for(settings),
            ),
            eta=EtaModel(RedisEtaStore(client), region_res=settings.region_res),
            batching=batching_for(settings, RedisPendingStore(scripts)),
            products=catalog,
            ride_ids_in_rider_slot=settings.ride_ids == "rider_slot",
            areas=(book := AreaBook(RedisAreaStore(scripts))),
            fences=Geofence(
                book,
                RedisPresenceStore(scripts),
                RedisAreaEventLog(client, settings.area_events_maxlen),
                RedisQueueStore(scripts),
            ),
        )
        await deps.areas.refresh()  # a restarted instance starts with the stored areas
        yield Runtime(deps, settings.backend, ping)
    finally:
        await notifier.close()
        await redis_index.close()
        await client.aclose()
