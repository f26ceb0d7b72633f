"""MarketStore and QuoteStore in process memory (the embedded backend): the same
semantics as the Redis adapters, buckets and lease included, so the contract tests hold
for both."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dispatch.adapters.memory_leases import MemoryLeases
from dispatch.domain.market import CountWindow, Pin
from dispatch.domain.quotes import Quote
from dispatch.service_layer.ports import Ask, CellCounts, Outcome, PinKey, SurgePatch


@dataclass
class _Bucket:
    counted: set[tuple[str, str]] = field(default_factory=set)  # (cell, rider)
    cells: dict[str, list[int]] = field(default_factory=dict)  # riders, n, x, eta sum, etas


class MemoryMarketStore:
    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._buckets: dict[tuple[int, str, int], _Bucket] = {}  # (region, product, bucket)
        self._active: dict[int, int] = {}  # region -> last activity (ms)
        self._leases = MemoryLeases(clock)
        self._computed: dict[int, dict[str, dict[str, float]]] = {}
        # region -> (product -> cell -> multiplier quoted, until (ms))
        self._surge: dict[int, tuple[dict[str, dict[str, float]], int]] = {}
        self._tokens: dict[int, tuple[str | None, int]] = {}  # region -> (token, until)
        self._pins: dict[int, dict[PinKey, Pin]] = {}
        self._enabled = True

    async def count(self, ask: Ask, window: CountWindow) -> None:
        now = window.bucket(ask.at_ms)
        self._forget_old(ask.region, window, ask.at_ms)
        region, product = ask.region, ask.product
        bucket = self._buckets.setdefault((region, product, now), _Bucket())
        row = bucket.cells.setdefault(ask.cell, [0, 0, 0, 0, 0])
        pair = (ask.cell, ask.rider_id)
        if not any(
            pair in self._buckets[(region, product, b)].counted
            for b in window.buckets(ask.at_ms)
            if (region, product, b) in self._buckets
        ):
            bucket.counted.add(pair)
            row[0] += 1
        if ask.outcome is not Outcome.QUOTE:
            row[1] += 1
            row[2] += ask.outcome is Outcome.NO_DRIVER
            if ask.eta_s is not None:
                row[3] += ask.eta_s
                row[4] += 1
        self._active[ask.region] = max(self._active.get(ask.region, 0), ask.at_ms)

    async def count_many(self, asks: Sequence[Ask], window: CountWindow) -> None:
        for ask in asks:
            await self.count(ask, window)

    def _forget_old(self, region: int, window: CountWindow, now_ms: int) -> None:
        first = window.buckets(now_ms)[0]
        for key in [k for k in self._buckets if k[0] == region and k[2] < first]:
            del self._buckets[key]

    async def counts(
        self, regions: Sequence[int], window: CountWindow, now_ms: int, products: Sequence[str]
    ) -> dict[int, dict[str, CellCounts]]:
        out: dict[int, dict[str, CellCounts]] = {}
        for region in regions:
            sums: dict[str, list[int]] = {}
            for p in products:
                for b in window.buckets(now_ms):
                    bucket = self._buckets.get((region, p, b))
                    if bucket is None:
                        continue
                    for cell, row in bucket.cells.items():
                        total = sums.setdefault(cell, [0, 0, 0, 0, 0])
                        for i, v in enumerate(row):
                            total[i] += v
            out[region] = {cell: CellCounts(*row) for cell, row in sums.items()}
        return out

    async def riders(
        self, regions: Sequence[int], window: CountWindow, now_ms: int, products: Sequence[str]
    ) -> dict[int, dict[str, dict[str, int]]]:
        out: dict[int, dict[str, dict[str, int]]] = {r: {} for r in regions}
        for p in products:
            for r, cells in (await self.counts(regions, window, now_ms, [p])).items():
                riders = {c: n.riders for c, n in cells.items() if n.riders}
                if riders:
                    out[r][p] = riders
        return out

    async def riders_in(
        self,
        cells: Mapping[int, Sequence[str]],
        window: CountWindow,
        now_ms: int,
        products: Sequence[str],
    ) -> dict[str, dict[str, int]]:
        counted = await self.riders(list(cells), window, now_ms, products)
        out: dict[str, dict[str, int]] = {}
        for r, named in cells.items():
            for p, riders in counted[r].items():
                for c in named:
                    if n := riders.get(c, 0):
                        out.setdefault(p, {})[c] = n
        return out

    async def active_regions(self, now_ms: int, since_ms: int) -> list[int]:
        return sorted(r for r, at in self._active.items() if at >= since_ms)

    async def keep_active(self, regions: Sequence[int], now_ms: int) -> None:
        for r in regions:
            self._active[r] = max(self._active.get(r, 0), now_ms)

    async def take_lease(
        self, region: int, holder: str, ttl_ms: int, resume: int = 0
    ) -> int | None:
        return self._leases.take(region, holder, ttl_ms, resume)

    async def drop_lease(self, region: int, holder: str, fence: int) -> None:
        self._leases.drop(region, holder, fence)

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
        if not self._leases.holds(region, holder, fence):
            return False
        until = self._clock() + ttl_ms
        self._computed[region] = {p: dict(cells) for p, cells in computed.items()}
        values = {p: dict(cells) for p, cells in quoted.items() if cells}
        self._surge[region] = (values, until)
        self._tokens[region] = (token, until)
        return True

    async def patch_surge(
        self, region: int, holder: str, fence: int, patch: SurgePatch, ttl_ms: int
    ) -> bool | None:
        if not self._leases.holds(region, holder, fence):
            return False
        if await self.surge_token(region) != patch.since:
            return None
        until = self._clock() + ttl_ms
        values, _ = self._surge.get(region, ({}, 0))
        for (cell, product), m in patch.quoted.items():  # the highest: computed on reads
            if m is None:
                values.get(product, {}).pop(cell, None)
            else:
                values.setdefault(product, {})[cell] = m
        values = {p: cells for p, cells in values.items() if cells}
        self._surge[region] = (values, until)
        if patch.computed is not None:
            self._computed[region] = {p: dict(cells) for p, cells in patch.computed.items()}
        self._tokens[region] = (patch.token, until)
        return True

    async def surge_token(self, region: int) -> str | None:
        token, until = self._tokens.get(region, (None, 0))
        return token if until > self._clock() else None

    async def computed(self, region: int) -> dict[str, dict[str, float]]:
        return {p: dict(cells) for p, cells in self._computed.get(region, {}).items()}

    async def surge(
        self, cells: Sequence[tuple[str, int]], product: str | None
    ) -> dict[str, float]:
        now = self._clock()
        out: dict[str, float] = {}
        for cell, region in cells:
            values, until = self._surge.get(region, ({}, 0))
            if until <= now:
                continue
            # Every product's (the highest is shown), or the one product's.
            named = values.values() if product is None else [values.get(product, {})]
            found = [by_cell[cell] for by_cell in named if cell in by_cell]
            if found:
                out[cell] = max(found)
        return out

    async def pins(self, region: int) -> dict[PinKey, Pin]:
        now = self._clock()
        return {k: p for k, p in self._pins.get(region, {}).items() if p.until_ms > now}

    async def set_pins(self, region: int, pins: Mapping[PinKey, Pin | None], now_ms: int) -> None:
        kept = {c: p for c, p in self._pins.get(region, {}).items() if p.until_ms > now_ms}
        for key, pin in pins.items():
            if pin is None:
                kept.pop(key, None)
            else:
                kept[key] = pin
        self._pins[region] = kept

    async def enabled(self) -> bool:
        return self._enabled

    async def set_enabled(self, enabled: bool) -> None:
        self._enabled = enabled


class MemoryQuoteStore:
    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._quotes: dict[str, Quote] = {}
        self._sweep_at = 1024  # sizes double between sweeps: amortised O(1) per put

    async def put(self, quote: Quote) -> None:
        if len(self._quotes) >= self._sweep_at:
            now = self._clock()
            self._quotes = {k: q for k, q in self._quotes.items() if q.expires_at > now}
            self._sweep_at = max(1024, 2 * len(self._quotes))
        self._quotes[quote.id] = quote

    async def get(self, quote_id: str) -> Quote | None:
        quote = self._quotes.get(quote_id)
        if quote is None or quote.expires_at <= self._clock():
            return None
        return quote
