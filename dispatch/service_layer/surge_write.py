"""A region's surge written as what moved since this process's own last write.

Writing the whole surge every round (a field per surging cell and product, and the
cell's highest over products: 20,000 fields for 10,000 surging cells) cost a recompute
about 7 ms of CPU at resolution 10 even when no multiplier had moved, which hysteresis
makes the common round. The recompute keeps what it wrote last in the layout's row
order (`Written`), names each write with a token the store keeps beside the surge, and
next round sends only the fields that changed (MarketStore.patch_surge), which the store
applies only on top of that very write: after a takeover, a failover that lost the
write, or an expiry, the token differs and the round writes in full. The stored surge is
the same either way (tests/unit/dispatch/test_surge_write.py), and so is what readers
and other instances answer.

The same kept copy is the next round's current state: a holder that wrote last reads
the store's token instead of its whole state.
"""

from __future__ import annotations

import itertools
import os
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from dispatch.domain.market import Pin, effective, pins_of
from dispatch.service_layer.ports import PinKey, SurgePatch
from dispatch.service_layer.surge_cells import CellLayout, Snapshot
from dispatch.service_layer.surge_fast import Floats, as_maps, quoted_surge

_PROCESS = os.urandom(4).hex()  # tokens of two processes never meet
_WRITES = itertools.count(1)


def new_token(holder: str, fence: int) -> str:
    return f"{holder} {fence} {_PROCESS}.{next(_WRITES)}"


@dataclass(frozen=True, slots=True)
class Written:
    """One region's surge as this process last wrote it, row for row of `layout`."""

    layout: CellLayout
    holder: str
    fence: int
    token: str
    products: tuple[str, ...]
    computed: Floats  # (products, rows): the recompute's multipliers, 1.0 where none
    enabled: bool
    pinned: frozenset[str]  # cells with a pin then: their fields were written one by one

    def follows(self, layout: CellLayout, holder: str, fence: int, token: str | None) -> bool:
        """Whether the store still holds this write, for the same holder and layout."""
        return (
            token == self.token
            and layout is self.layout
            and holder == self.holder
            and fence == self.fence
        )


class WrittenCache:
    """Each region's last write by this process, the least recently used dropped."""

    def __init__(self, max_regions: int = 256) -> None:
        self._max = max_regions
        self._by_region: OrderedDict[int, Written] = OrderedDict()

    def get(self, region: int) -> Written | None:
        return self._by_region.get(region)

    def put(self, region: int, written: Written) -> None:
        self._by_region.pop(region, None)
        self._by_region[region] = written
        while len(self._by_region) > self._max:
            self._by_region.popitem(last=False)

    def drop(self, region: int) -> None:
        self._by_region.pop(region, None)


def full_surge(
    snap: Snapshot,
    products: tuple[str, ...],
    computed: Floats,
    pins: Mapping[PinKey, Pin],
    enabled: bool,
    now_ms: int,
    catalog: Iterable[str],
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """What put_surge takes: the state (products with a cell above 1.0) and what each
    product's riders are quoted (pins and the switch applied)."""
    maps = as_maps(snap.cells, products, computed)
    pinned = {p for _, p in pins if p is not None}
    every = set(catalog) if any(p is None for _, p in pins) else set()
    quoted = {
        p: quoted_surge(maps.get(p, {}), pins_of(pins, p, now_ms), enabled, now_ms)
        for p in maps.keys() | pinned | every
    }
    return _state(maps), quoted


def _state(maps: Mapping[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The stored state: the products with a cell above 1.0."""
    return {p: cells for p, cells in maps.items() if cells}


def surge_patch(
    last: Written,
    now: Written,
    snap: Snapshot,
    pins: Mapping[PinKey, Pin],
    now_ms: int,
    catalog: Collection[str],
) -> SurgePatch:
    """The changes from `last`'s stored surge to the one `now` writes in full.

    Cells without a pin, then or now: their fields follow from the arrays (a product's
    quoted multiplier is its computed one, or 1.0 with surge off; every value is at least
    1.0, so the highest is the column's maximum), compared row by row. Cells with a pin,
    then or now (a handful): every field they may hold is written or cleared."""
    n = len(snap.cells)
    products = tuple(sorted(set(last.products) | set(now.products)))
    old = _quoted(last, products, n)
    new = _quoted(now, products, n)
    by_pin = last.pinned | now.pinned
    free = np.ones(n, dtype=np.bool_)
    free[[snap.index[c] for c in by_pin if snap.index.get(c, n) < n]] = False
    moved = (old != new) & free
    quoted: dict[tuple[str, str], float | None] = {}
    for i, rows in enumerate(moved):
        rows_at = np.flatnonzero(rows)
        if len(rows_at):
            p = products[i]
            values = new[i, rows_at].tolist()
            for cell, m in zip(snap.cells[rows_at].tolist(), values, strict=True):
                quoted[(cell, p)] = m if m > 1.0 else None
    top_old, top_new = old.max(axis=0, initial=1.0), new.max(axis=0, initial=1.0)
    rows_at = np.flatnonzero((top_old != top_new) & free)
    highest: dict[str, float | None] = {
        cell: (m if m > 1.0 else None)
        for cell, m in zip(snap.cells[rows_at].tolist(), top_new[rows_at].tolist(), strict=True)
    }
    if by_pin:
        _pinned_cells(by_pin, now, snap, pins, now_ms, catalog, products, quoted, highest)
    state = None
    if not np.array_equal(_rows(last, products, n), _rows(now, products, n)):
        state = _state(as_maps(snap.cells, now.products, now.computed))
    return SurgePatch(last.token, now.token, quoted, highest, state)


def _pinned_cells(
    cells: Collection[str],
    now: Written,
    snap: Snapshot,
    pins: Mapping[PinKey, Pin],
    now_ms: int,
    catalog: Collection[str],
    products: tuple[str, ...],
    quoted: dict[tuple[str, str], float | None],
    highest: dict[str, float | None],
) -> None:
    """Every field of these cells as a full write leaves it (cleared where absent)."""
    n = len(snap.cells)
    named = {p for _, p in pins if p is not None}
    everyone = sorted(set(catalog) | set(products) | named)
    own = {p: pins_of(pins, p, now_ms) for p in everyone}
    computed = dict(zip(now.products, now.computed, strict=True))
    for cell in cells:
        row = snap.index.get(cell, n)
        top: float | None = None
        for p in everyone:
            values = computed.get(p)
            m = float(values[row]) if values is not None and row < len(values) else 1.0
            pin = own[p].get(cell)
            if pin is not None:
                q = effective(m, pin, now.enabled, now_ms)
            else:
                q = m if now.enabled else 1.0
            if q != 1.0:
                quoted[(cell, p)] = q
                top = q if top is None or q > top else top
            else:
                quoted[(cell, p)] = None
        highest[cell] = top


def _rows(w: Written, products: tuple[str, ...], n: int) -> Floats:
    """w's computed multipliers on `products` x `n` rows (1.0 where it has none)."""
    out = np.ones((len(products), n))
    at = {p: i for i, p in enumerate(products)}
    for p, row in zip(w.products, w.computed, strict=True):
        out[at[p], : len(row)] = row
    return out


def _quoted(w: Written, products: tuple[str, ...], n: int) -> Floats:
    """What w quotes without pins: its multipliers, or 1.0 everywhere with surge off."""
    return _rows(w, products, n) if w.enabled else np.ones((len(products), n))
