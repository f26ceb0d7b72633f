"""MarketStore and QuoteStore on Redis / Redis Cluster.

Keys (every key of a region's market carries the region's hash tag, as the geo index's
region keys do, so on a cluster a region's market lives in the region's slot and each
script below runs on one node):
  mk:{r<region>}:b:<bucket>:<product>  hash: per cell, distinct riders, requests,
                             no_driver, ETAs of the product's riders
  mk:{r<region>}:d:<product>  sorted set: "<cell>|<rider>" -> the bucket it was last
                             counted in as the product's demand (those older than the
                             window dropped as riders are counted)
  mk:{r<region>}:lease       string "<fence> <holder>": the region's surge job
  mk:{r<region>}:fence       counter of the lease's fencing tokens
  mk:{r<region>}:surge       hash: "<cell>|<product>" -> multiplier the product's riders
                             are quoted, "<cell>" -> the highest of them (cells at 1.0
                             left out)
  mk:{r<region>}:calc        JSON {product: {cell: multiplier}}: what the recompute
                             reached (read by the recompute only: one string)
  mk:{r<region>}:token       string: names the write the surge and calc hold; a holder
                             that wrote it changes only the moved cells on top of it
  mk:{r<region>}:pins        hash: "<cell>" (every product) or "<cell>|<product>" ->
                             "<multiplier> <until ms>"
  mk:regions                 zset: region -> last activity (ms), for the surge job
  mk:switch                  "off" while an operator has turned surge off
  mk:q:{<quote id>}          a quote, expiring with it
Buckets live for the window plus one bucket; surge values for a few recompute rounds
(a region whose job stops falls back to 1.0 by itself). A product's counters are keys of
their own, so a product's read touches only its keys, the scripts are the same for every
product, and a bucket costs memory per product that riders asked for in it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from dispatch.adapters.redis_client import script
from dispatch.domain.fares import Estimate, FareTable
from dispatch.domain.geo import LatLng
from dispatch.domain.market import CountWindow, Pin
from dispatch.domain.quotes import Quote
from dispatch.service_layer.ports import Ask, CellCounts, PinKey, SurgePatch
from geoindex import ScriptRunner, translated
from geoindex.redis_edge import Call

COUNT = script("market_count")
WINDOW = script("market_window")
RIDERS = script("market_riders")
LEASE = script("market_lease")
LEASE_DROP = script("market_lease_drop")
SURGE_PUT = script("market_surge_put")
SURGE_PATCH = script("market_surge_patch")
SCRIPTS = (COUNT, WINDOW, RIDERS, LEASE, LEASE_DROP, SURGE_PUT, SURGE_PATCH)

REGIONS_KEY = "mk:regions"
SWITCH_KEY = "mk:switch"
FENCE_KEEP_MS = 30 * 24 * 3_600_000  # a month idle before fencing tokens start over
PINS_KEEP_MS = 7 * 24 * 3_600_000
REGIONS_KEEP_MS = 24 * 3_600_000
_FIELDS = {"n": 1, "x": 2, "e": 3, "k": 4}  # suffix -> CellCounts position (riders: 0)


def region_tag(region: int) -> str:
    return f"mk:{{r{region:x}}}"


def quote_key(quote_id: str) -> str:
    return f"mk:q:{{{quote_id}}}"


class RedisMarketStore:
    def __init__(self, scripts: ScriptRunner) -> None:
        self._scripts = scripts
        self._r = scripts.client
        self._touched: set[int] = set()  # regions counted into since the last keep_active

    async def count(self, ask: Ask, window: CountWindow) -> None:
        await self._scripts.call(*_count_call(ask, window))
        self._touched.add(ask.region)

    async def count_many(self, asks: Sequence[Ask], window: CountWindow) -> None:
        await self._scripts.run([_count_call(a, window) for a in asks])
        self._touched.update(a.region for a in asks)

    async def counts(
        self, regions: Sequence[int], window: CountWindow, now_ms: int, products: Sequence[str]
    ) -> dict[int, dict[str, CellCounts]]:
        # One script call per region over every product's buckets: the script sums the
        # fields of all the keys it is given.
        calls: list[Call] = [(WINDOW, _buckets(r, window, now_ms, products), []) for r in regions]
        replies = await self._scripts.run(calls)
        return {r: _cell_counts(reply) for r, reply in zip(regions, replies, strict=True)}

    async def riders(
        self, regions: Sequence[int], window: CountWindow, now_ms: int, products: Sequence[str]
    ) -> dict[int, dict[str, dict[str, int]]]:
        # One script call per region, every product's buckets in it.
        calls = [_riders(r, window, now_ms, products, ()) for r in regions]
        replies = await self._scripts.run(calls) if calls else []
        # {product: {cell: riders}} as the script sums it: nothing to regroup.
        return {r: orjson.loads(reply) for r, reply in zip(regions, replies, strict=True)}

    async def riders_in(
        self,
        cells: Mapping[int, Sequence[str]],
        window: CountWindow,
        now_ms: int,
        products: Sequence[str],
    ) -> dict[str, dict[str, int]]:
        # One script call per region, its cells named once for every product.
        calls = [_riders(r, window, now_ms, products, named) for r, named in cells.items() if named]
        out: dict[str, dict[str, int]] = {}
        for reply in await self._scripts.run(calls) if calls else []:
            for p, riders in orjson.loads(reply).items():
                out.setdefault(p, {}).update(riders)
        return out

    async def active_regions(self, now_ms: int, since_ms: int) -> list[int]:
        touched, self._touched = self._touched, set()
        with translated():
            pipe = self._r.pipeline(transaction=False)
            if touched:
                pipe.zadd(REGIONS_KEY, {f"{r:x}": now_ms for r in touched}, gt=True)
            pipe.zremrangebyscore(REGIONS_KEY, "-inf", now_ms - REGIONS_KEEP_MS)
            pipe.zrangebyscore(REGIONS_KEY, since_ms, "+inf")
            replies = await pipe.execute()
        return sorted(int(_s(r), 16) for r in replies[-1])

    async def keep_active(self, regions: Sequence[int], now_ms: int) -> None:
        if regions:
            with translated():
                await self._r.zadd(REGIONS_KEY, {f"{r:x}": now_ms for r in regions}, gt=True)

    async def take_lease(
        self, region: int, holder: str, ttl_ms: int, resume: int = 0
    ) -> int | None:
        tag = region_tag(region)
        keys = [f"{tag}:lease", f"{tag}:fence"]
        fence = int(await self._scripts.call(LEASE, keys, [holder, ttl_ms, FENCE_KEEP_MS, resume]))
        return fence or None

    async def drop_lease(self, region: int, holder: str, fence: int) -> None:
        await self._scripts.call(LEASE_DROP, [f"{region_tag(region)}:lease"], [holder, fence])

    async def put_surge(
        self,
        region: int,
        holder: str,
        fence: int,
        computed: Mapping[str, Mapping[str, float]],
        quoted: Mapping[str, Mapping[str, float]],
        ttl_ms: int,
        token: str | None = None,
    ) -> bool:
        tag = region_tag(region)
        # Each product's multiplier under "<cell>|<product>", and the highest of a cell's
        # under "<cell>" (what a read of every product shows), as strings (the hash holds
        # them as written); the recompute's own state as JSON numbers, which orjson writes
        # and reads back exactly. One JSON argument per hash: redis-py packs tens of
        # thousands of separate arguments far slower than orjson writes one.
        flat: dict[str, str] = {}
        for product, cells in quoted.items():
            suffix = "|" + product
            flat.update(zip([c + suffix for c in cells], map(_text, cells.values()), strict=True))
        highest = _highest(quoted)
        flat.update(zip(highest, map(_text, highest.values()), strict=True))
        args: list[Any] = [holder, fence, ttl_ms, orjson.dumps(flat), orjson.dumps(computed)]
        keys = [f"{tag}:lease", f"{tag}:surge", f"{tag}:calc", f"{tag}:token"]
        return bool(await self._scripts.call(SURGE_PUT, keys, [*args, token or ""]))

    async def patch_surge(
        self, region: int, holder: str, fence: int, patch: SurgePatch, ttl_ms: int
    ) -> bool | None:
        tag = region_tag(region)
        gone = [f"{c}|{p}" for (c, p), m in patch.quoted.items() if m is None]
        gone += [c for c, m in patch.highest.items() if m is None]
        flat = {f"{c}|{p}": _text(m) for (c, p), m in patch.quoted.items() if m is not None}
        flat.update((c, _text(m)) for c, m in patch.highest.items() if m is not None)
        state = b"" if patch.computed is None else orjson.dumps(patch.computed)
        args = [holder, fence, ttl_ms, patch.since, patch.token]
        args += [orjson.dumps(gone), orjson.dumps(flat), state]
        keys = [f"{tag}:lease", f"{tag}:surge", f"{tag}:calc", f"{tag}:token"]
        reply = int(await self._scripts.call(SURGE_PATCH, keys, args))
        return None if reply == 2 else bool(reply)

    async def surge_token(self, region: int) -> str | None:
        with translated():
            raw = await self._r.get(f"{region_tag(region)}:token")
        return None if raw is None else _s(raw)

    async def computed(self, region: int) -> dict[str, dict[str, float]]:
        with translated():
            raw = await self._r.get(f"{region_tag(region)}:calc")
        state = {} if raw is None else orjson.loads(raw)
        # A state written before surge was per product ({cell: multiplier}) is dropped:
        # the recompute climbs back to its multipliers within a few rounds.
        return {p: cells for p, cells in state.items() if isinstance(cells, dict)}

    async def surge(
        self, cells: Sequence[tuple[str, int]], product: str | None
    ) -> dict[str, float]:
        suffix = "" if product is None else f"|{product}"
        by_region: dict[int, list[str]] = {}
        for cell, region in cells:
            by_region.setdefault(region, []).append(cell)
        if not by_region:
            return {}
        regions = list(by_region)
        with translated():
            if len(regions) == 1:  # a quote: one cell, one command
                only = regions[0]
                fields = [c + suffix for c in by_region[only]]
                replies = [await self._r.hmget(f"{region_tag(only)}:surge", fields)]
            else:
                pipe = self._r.pipeline(transaction=False)
                for r in regions:
                    pipe.hmget(f"{region_tag(r)}:surge", [c + suffix for c in by_region[r]])
                replies = await pipe.execute()
        out: dict[str, float] = {}
        for r, values in zip(regions, replies, strict=True):
            for cell, v in zip(by_region[r], values, strict=True):
                if v is not None:
                    out[cell] = float(v)
        return out

    async def pins(self, region: int) -> dict[PinKey, Pin]:
        with translated():
            flat = await self._r.hgetall(f"{region_tag(region)}:pins")
        return {_pin_key(_s(f)): _pin(v) for f, v in flat.items()}

    async def set_pins(self, region: int, pins: Mapping[PinKey, Pin | None], now_ms: int) -> None:
        key = f"{region_tag(region)}:pins"
        gone = [_pin_field(k) for k, p in (await self.pins(region)).items() if p.until_ms <= now_ms]
        gone += [_pin_field(k) for k, p in pins.items() if p is None]
        live = {
            _pin_field(k): f"{p.multiplier!r} {p.until_ms}"
            for k, p in pins.items()
            if p is not None
        }
        with translated():
            pipe = self._r.pipeline(transaction=False)
            if gone:
                pipe.hdel(key, *gone)
            if live:
                pipe.hset(key, mapping=live)
                pipe.pexpire(key, PINS_KEEP_MS)
            await pipe.execute()

    async def enabled(self) -> bool:
        with translated():
            return await self._r.get(SWITCH_KEY) is None

    async def set_enabled(self, enabled: bool) -> None:
        with translated():
            if enabled:
                await self._r.delete(SWITCH_KEY)
            else:
                await self._r.set(SWITCH_KEY, "off")


class RedisQuoteStore:
    def __init__(self, client: Any, clock: Any) -> None:
        self._r = client
        self._clock = clock

    async def put(self, quote: Quote) -> None:
        ttl = max(1, quote.expires_at - self._clock())
        with translated():
            await self._r.set(quote_key(quote.id), _encode(quote), px=ttl)

    async def get(self, quote_id: str) -> Quote | None:
        with translated():
            raw = await self._r.get(quote_key(quote_id))
        return None if raw is None else _decode(raw)


def _cell_counts(reply: bytes) -> dict[str, CellCounts]:
    rows: dict[str, list[int]] = {}
    for field, total in orjson.loads(reply).items():
        name, _, suffix = field.partition("|")
        row = rows.get(name)
        if row is None:
            row = rows[name] = [0, 0, 0, 0, 0]
        row[_FIELDS[suffix] if suffix else 0] = int(total)
    return {cell: CellCounts(*row) for cell, row in rows.items()}


def _buckets(region: int, window: CountWindow, now_ms: int, products: Sequence[str]) -> list[str]:
    """The bucket hashes of the window for each product, in that order."""
    tag = region_tag(region)
    return [f"{tag}:b:{b}:{p}" for p in products for b in window.buckets(now_ms)]


def _riders(
    region: int, window: CountWindow, now_ms: int, products: Sequence[str], cells: Sequence[str]
) -> Call:
    """market_riders.lua's call for the region's products (and only `cells`, if any)."""
    keys = _buckets(region, window, now_ms, products)
    only = [" ".join(cells)] if cells else []
    return (RIDERS, keys, [len(keys) // len(products), len(products), *products, *only])


# A multiplier as the surge hash holds it: a few dozen distinct values, each written once.
_text = functools.lru_cache(maxsize=1_024)(repr)


def _highest(by_product: Mapping[str, Mapping[str, float]]) -> Mapping[str, float]:
    """Each cell's highest multiplier over the products."""
    if len(by_product) == 1:
        return next(iter(by_product.values()))
    out: dict[str, float] = {}
    for cells in by_product.values():
        for cell, m in cells.items():
            if m > out.get(cell, 0.0):
                out[cell] = m
    return out


def _pin_field(key: PinKey) -> str:
    cell, product = key
    return cell if product is None else f"{cell}|{product}"


def _pin_key(field: str) -> PinKey:
    cell, _, product = field.partition("|")
    return cell, product or None


def _pin(raw: Any) -> Pin:
    multiplier, until = _s(raw).split()
    return Pin(float(multiplier), int(until))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _encode(q: Quote) -> bytes:
    f = q.fare
    return orjson.dumps(
        {
            "id": q.id,
            "rider": q.rider_id,
            "cell": q.cell,
            "pickup": [q.pickup.lat, q.pickup.lng],
            "dropoff": None if q.dropoff is None else [q.dropoff.lat, q.dropoff.lng],
            "surge": q.surge,
            "eta": q.pickup_eta_s,
            "fare": [f.currency, f.base, f.per_km, f.per_min, f.minimum],
            "est": None if q.estimate is None else [q.estimate.low, q.estimate.high],
            "created": q.created_at,
            "expires": q.expires_at,
            "product": q.product,
        }
    )


def _decode(raw: bytes) -> Quote:
    d = orjson.loads(raw)
    currency, base, per_km, per_min, minimum = d["fare"]
    return Quote(
        id=d["id"],
        rider_id=d["rider"],
        cell=d["cell"],
        pickup=LatLng(*d["pickup"]),
        dropoff=None if d["dropoff"] is None else LatLng(*d["dropoff"]),
        surge=d["surge"],
        pickup_eta_s=d["eta"],
        fare=FareTable(currency, base, per_km, per_min, minimum),
        estimate=None if d["est"] is None else Estimate(*d["est"]),
        created_at=d["created"],
        expires_at=d["expires"],
        product=d.get("product"),  # absent: stored before products
    )


def _count_call(ask: Ask, window: CountWindow) -> Call:
    tag, p = region_tag(ask.region), ask.product
    buckets = window.buckets(ask.at_ms)
    keys = [f"{tag}:b:{buckets[-1]}:{p}", f"{tag}:d:{p}"]
    eta = "-" if ask.eta_s is None else ask.eta_s
    args = [ask.cell, ask.rider_id, ask.outcome.value, eta, window.keep_ms]
    return COUNT, keys, [*args, buckets[-1], buckets[0]]
