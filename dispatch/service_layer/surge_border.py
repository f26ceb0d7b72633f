"""Smoothing across region borders: which market cells of the neighbouring regions touch
a region, and which of its own cells touch each neighbour.

A region's recompute prices only its own cells, but a cell at its border has ring-1
neighbours in another region, whose demand is counted under that region's hash tag
(another Redis Cluster slot). The recompute reads those neighbours' counts for the
touching cells only, one script call per neighbouring region, pipelined in the same
round: no script ever reads two slots. And a region whose border cells have demand keeps
its neighbours active, so that they price their side of the border too.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass

from h3.api import basic_str as h3

from dispatch.service_layer.market import ring1

# Finding a region's border walks every market cell of it once per process (about
# 160 ms for the 16,807 cells of resolution 10 under a resolution-5 region); markets
# finer than that relative to their regions go without smoothing across borders.
MAX_REGION_CELLS = 7**5


@dataclass(frozen=True, slots=True)
class Border:
    outer: dict[int, tuple[str, ...]]  # neighbouring region -> its cells touching ours
    inner: dict[int, frozenset[str]]  # neighbouring region -> our cells touching it


@functools.lru_cache(maxsize=256)
def border_of(region: int, region_res: int, res: int) -> Border | None:
    """The region's border at market resolution `res`, None if the region is too large
    at that resolution to walk (see MAX_REGION_CELLS)."""
    if 7 ** (res - region_res) > MAX_REGION_CELLS:
        return None
    home = h3.int_to_str(region)
    outer: dict[int, set[str]] = {}
    inner: dict[int, set[str]] = {}
    for cell in h3.cell_to_children(home, res):
        for n in ring1(cell):
            parent = h3.cell_to_parent(n, region_res)
            if parent != home:
                other = int(parent, 16)
                outer.setdefault(other, set()).add(n)
                inner.setdefault(other, set()).add(cell)
    return Border(
        {r: tuple(sorted(cells)) for r, cells in outer.items()},
        {r: frozenset(cells) for r, cells in inner.items()},
    )


def neighbours_to_wake(border: Border, demand: Collection[str]) -> list[int]:
    """The neighbouring regions next to which this region has demand: they must
    recompute (their border cells are priced by it) even with no demand of their own."""
    return sorted(r for r, cells in border.inner.items() if not cells.isdisjoint(demand))
