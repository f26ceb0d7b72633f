"""A region's surge recompute vectorised: dispatch.domain.market.recompute (the pure
reference) as a few numpy passes over the region's cell layout (surge_cells.py), every
product at once in (products x cells) arrays.

The reference spends about 45 ms of CPU on 10,000 active cells in dict operations; this
pass, about 2 ms. Both give the same multipliers (tests/unit/dispatch/test_surge_fast.py,
hypothesis): each step is the same float operation on the same operands, except the
smoothing's sums, which add the same terms in another order. With the service's inputs
(whole riders per minute over the default window, whole drivers; weights 1 and 1/2) every
such sum is exact, so the order cannot matter; with fractional inputs the two could
differ by one rounding of a sum, which moves a multiplier only when the pressure lands
within that rounding of a step's edge.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dispatch.domain.market import Pin, SurgePolicy, effective
from dispatch.service_layer.surge_cells import CellLayout, Snapshot

_EPS = 1e-9  # as the domain's: a target just over a step does not count
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Round:
    """One recompute's inputs laid out: the region's cells (a column each, and a zero
    column after them, which absent neighbours read) and its products (a row each) with
    each cell's demand and current multiplier."""

    snap: Snapshot
    products: tuple[str, ...]
    demand: Floats  # (products, cells + 1)
    current: Floats


def lay_out(
    layout: CellLayout,
    demand: Mapping[str, Mapping[str, float]],
    current: Mapping[str, Mapping[str, float]],
) -> Round:
    """A round of every product with demand or a current multiplier (product -> cell ->
    value), on one snapshot: the cells any product needs are laid out once."""
    snap = layout.snapshot(layout.unseen(demand.values()), cells_of(current))
    products = tuple(sorted(demand.keys() | current.keys()))
    return Round(
        snap,
        products,
        _table(snap, products, demand, 0.0),
        _table(snap, products, current, 1.0),
    )


def lay_out_kept(
    layout: CellLayout,
    demand: Mapping[str, Mapping[str, float]],
    products: tuple[str, ...],
    current: Floats,
) -> Round:
    """lay_out with the current multipliers already in the layout's row order (a
    (products, rows) array this process computed on this layout, 1.0 where none): no map
    to look up cell by cell, and no surging cell to lay out (its row exists)."""
    snap = layout.snapshot(layout.unseen(demand.values()), ())
    n = len(snap.cells)
    standing = {p: row for p, row in zip(products, current, strict=True) if (row > 1.0).any()}
    ordered = tuple(sorted(demand.keys() | standing.keys()))
    table = np.ones((len(ordered), n + 1))
    for i, p in enumerate(ordered):
        row = standing.get(p)
        if row is not None:
            table[i, : len(row)] = row
    table[:, -1] = 0.0
    return Round(snap, ordered, _table(snap, ordered, demand, 0.0), table)


def cells_of(by_product: Mapping[str, Mapping[str, float]]) -> Collection[str]:
    """Every cell any product names (one product's own keys, without a copy)."""
    if len(by_product) == 1:
        return next(iter(by_product.values())).keys()
    return set().union(*by_product.values())


def cells_to_supply(r: Round) -> npt.NDArray[np.intp]:
    """The columns whose supply prices some cell of some product: those within two rings
    of any product's demand (a cell within one ring of demand is priced by the drivers
    of its own ring; a product's supply further from its own demand changes none of its
    multipliers, so one set of cells serves every product)."""
    nbr = r.snap.nbr
    priced = np.asarray((r.demand > 0).any(axis=0), dtype=np.bool_)
    priced[nbr[priced[:-1]]] = True
    priced[-1] = False  # the zero column absent neighbours point at
    wanted = priced.copy()
    wanted[nbr[priced[:-1]]] = True
    return np.flatnonzero(wanted[:-1])


def supply_table(r: Round, supply: Mapping[str, Mapping[str, float]]) -> Floats:
    """The round's supply array from maps (product -> cell -> drivers): 0 elsewhere."""
    return _table(r.snap, r.products, supply, 0.0)


def next_surge(r: Round, supply: Floats, policy: SurgePolicy) -> dict[str, dict[str, float]]:
    """dispatch.domain.market.recompute of every product over the round's cells, in one
    pass over (products x cells) arrays, given each product's supply (a row per product,
    a column per cell and the zero column: at least its cells_to_supply filled in).
    Cells not inside the layout's region are left out (their own region prices them)."""
    return as_maps(r.snap.cells, r.products, next_rows(r, supply, policy))


def next_rows(r: Round, supply: Floats, policy: SurgePolicy) -> Floats:
    """next_surge as a (products, cells) array in the layout's row order: each product's
    multiplier in every cell inside the region, 1.0 in the cells outside it."""
    snap = r.snap
    cw, rw = policy.centre_weight, policy.ring_weight
    nbr_t = np.ascontiguousarray(snap.nbr.T)
    d = _smoothed(nbr_t, r.demand, cw, rw)
    s = _smoothed(nbr_t, supply, cw, rw)
    now = r.current[:, :-1]
    # A cell's sums stay unnormalised, as in the reference: the weights cancel in the ratio.
    weight = cw + rw * snap.degree
    pressure = d / np.maximum(s, policy.min_supply * weight)
    raw = 1.0 + policy.sensitivity * (pressure - 1.0)
    stepped = np.round(np.floor(raw / policy.step + _EPS) * policy.step, 6)
    goal = np.where(pressure > 1.0, np.clip(stepped, 1.0, policy.cap), 1.0)
    # next_multiplier, every cell at once
    gap = goal - now
    at_bound = (goal <= 1.0 + _EPS) | (goal >= policy.cap - _EPS)
    still = (np.abs(gap) < _EPS) | ((np.abs(gap) < policy.band - _EPS) & ~at_bound)
    move = np.clip(gap, -policy.max_move, policy.max_move)
    moved = np.clip(np.round(now + move, 6), 1.0, policy.cap)
    out: Floats = np.where(still, now, moved)
    return np.where(snap.inside, out, 1.0)


def as_maps(
    cells: npt.NDArray[np.object_], products: tuple[str, ...], rows: Floats
) -> dict[str, dict[str, float]]:
    """A (products, rows) array of multipliers as maps (product -> cell -> multiplier),
    cells at 1.0 left out: every product given, if only with an empty map."""
    return {
        p: dict(zip(cells[: len(values)][up].tolist(), values[up].tolist(), strict=True))
        for p, values, up in zip(products, rows, rows > 1.0, strict=True)
    }


def quoted_surge(
    computed: Mapping[str, float], pins: Mapping[str, Pin], enabled: bool, now_ms: int
) -> dict[str, float]:
    """What riders are quoted in every cell not at 1.0: dispatch.domain.market.effective
    cell by cell, where only the pinned cells can differ from the computed ones."""
    out = {c: m for c, m in computed.items() if m != 1.0} if enabled else {}
    for cell, pin in pins.items():
        m = effective(computed.get(cell, 1.0), pin, enabled, now_ms)
        if m != 1.0:
            out[cell] = m
        else:
            out.pop(cell, None)
    return out


def _smoothed(nbr_t: npt.NDArray[np.int32], values: Floats, cw: float, rw: float) -> Floats:
    """Each cell's centre and ring-1 values, weighted and summed (absent neighbours: 0),
    for each product's row. `nbr_t`: the layout's neighbour table transposed (a row per
    neighbour slot). The ring's six terms are added in slot order, as a sum over them
    would, one slot at a time into one buffer (a (products, cells, 6) gather and its sum
    cost several times more)."""
    share = rw * values
    out: Floats = np.take(share, nbr_t[0], axis=1)
    term = np.empty_like(out)
    for slot in nbr_t[1:]:
        np.take(share, slot, axis=1, out=term)
        out += term
    out += cw * values[:, :-1]
    return out


def _table(
    snap: Snapshot,
    products: tuple[str, ...],
    by_product: Mapping[str, Mapping[str, float]],
    fill: float,
) -> Floats:
    """A row per product, a value per cell (`fill` where none is given) and the zero
    column. Where `fill` is 0, values <= 0 count as 0 (the reference spreads only
    positive counts)."""
    n = len(snap.cells)
    out = np.full((len(products), n + 1), fill)
    for row, p in zip(out, products, strict=True):
        by_cell = by_product.get(p, {})
        cols = np.fromiter(map(snap.index.__getitem__, by_cell), dtype=np.intp, count=len(by_cell))
        if len(cols) and cols.max() >= n:
            raise ValueError("a cell laid out after the snapshot")
        vals = np.fromiter(by_cell.values(), dtype=np.float64, count=len(by_cell))
        row[cols] = vals if fill else np.maximum(vals, 0.0)
    out[:, -1] = 0.0
    return out
