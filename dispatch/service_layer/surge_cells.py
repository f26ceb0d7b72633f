"""A region's market cells laid out for numpy: a row per cell and each row's ring-1
neighbours as row numbers, kept from one recompute round to the next.

Asking h3 for the rings of 10,000 cells and building the sets of cells within one and
two rings of demand took a region's recompute about 14 ms every round; the layout only
changes where demand appears in cells it has not seen, so a round pays for those alone.
A layout is H3 geometry and nothing else (which cells neighbour which), so one process
keeps one per region, whichever instance or lease it recomputes under.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, KeysView, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Ring = Callable[[str], Sequence[str]]
ABSENT = -1  # a neighbour not laid out: reads the zero slot every value array ends with


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The layout as one round reads it: rows never point past `cells`, however much the
    layout grows while the round awaits its reads."""

    cells: npt.NDArray[np.object_]  # row -> cell id
    ids: npt.NDArray[np.uint64]  # row -> the cell's H3 id (the index's supply read takes them)
    index: dict[str, int]  # cell id -> row (may hold rows added later: check < len)
    nbr: npt.NDArray[np.int32]  # (rows, 6) ring-1 rows, ABSENT-padded
    degree: npt.NDArray[np.int8]  # len(ring1): 6, or 5 around a pentagon
    inside: npt.NDArray[np.bool_]  # the region's own cells (it prices no others)


def _everywhere(cell: str) -> bool:
    return True


class CellLayout:
    def __init__(self, ring: Ring, inside: Callable[[str], bool] = _everywhere) -> None:
        self._ring = ring
        self._is_inside = inside
        self._cells: list[str] = []
        self._index: dict[str, int] = {}
        self._nbr = np.full((1024, 6), ABSENT, dtype=np.int32)
        self._degree = np.zeros(1024, dtype=np.int8)
        self._inside = np.zeros(1024, dtype=np.bool_)
        self._complete: set[str] = set()  # rows whose six (five) neighbours are laid out
        self._disks: set[str] = set()  # cells whose ring-1 rows are all complete
        self._names: npt.NDArray[np.object_] = np.array([], dtype=object)  # _cells, for numpy
        self._ids = np.zeros(1024, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._cells)

    def unseen(self, groups: Iterable[Collection[str]]) -> set[str]:
        """The cells of `groups` (each product's demand cells) not yet laid out with their
        disks: what snapshot must lay out. A round's demand is mostly cells seen before,
        and a keys view less a set runs in C."""
        out: set[str] = set()
        for cells in groups:
            if isinstance(cells, Mapping):
                cells = cells.keys()
            if isinstance(cells, (AbstractSet, KeysView)):
                out |= cells - self._disks
            else:
                out.update(c for c in cells if c not in self._disks)
        return out

    def snapshot(self, demand: Iterable[str], others: Iterable[str]) -> Snapshot:
        """Lay out every cell within two rings of a `demand` cell (the cells a demand
        cell prices, and the cells whose supply prices them) and each of `others`
        (cells surging now, which must be able to fall back)."""
        for cell in demand:
            if cell not in self._disks:
                self._complete_row(cell)
                for neighbour in self._ring(cell):
                    self._complete_row(neighbour)
                self._disks.add(cell)
        index = self._index
        for cell in others:
            if cell not in index:
                self._row(cell)
        n = len(self._cells)
        if len(self._names) != n:
            self._names = np.array(self._cells, dtype=object)
        # Copies (a few hundred KB): a later round may complete rows meanwhile.
        return Snapshot(
            self._names,
            self._ids[:n].copy(),
            index,
            self._nbr[:n].copy(),
            self._degree[:n].copy(),
            self._inside[:n].copy(),
        )

    def _row(self, cell: str) -> int:
        row = self._index.get(cell)
        if row is None:
            row = self._index[cell] = len(self._cells)
            self._cells.append(cell)
            if row == len(self._degree):  # full: double (rows already handed out stay)
                self._nbr = np.concatenate([self._nbr, np.full_like(self._nbr, ABSENT)])
                self._degree = np.concatenate([self._degree, np.zeros_like(self._degree)])
                self._inside = np.concatenate([self._inside, np.zeros_like(self._inside)])
                self._ids = np.concatenate([self._ids, np.zeros_like(self._ids)])
            self._ids[row] = int(cell, 16)
            self._degree[row] = len(self._ring(cell))
            self._inside[row] = self._is_inside(cell)
        return row

    def _complete_row(self, cell: str) -> None:
        if cell in self._complete:
            return
        row = self._row(cell)
        neighbours = [self._row(n) for n in self._ring(cell)]
        self._nbr[row, : len(neighbours)] = neighbours
        self._complete.add(cell)


class Layouts:
    """One layout per region, the least recently used dropped past `max_regions`; a
    layout grown past `max_cells` (demand having wandered over a fine-grained region)
    starts afresh."""

    def __init__(self, ring: Ring, max_regions: int = 256, max_cells: int = 200_000) -> None:
        self._ring = ring
        self._max_regions = max_regions
        self._max_cells = max_cells
        self._by_region: OrderedDict[int, CellLayout] = OrderedDict()

    def get(self, region: int, inside: Callable[[str], bool] = _everywhere) -> CellLayout:
        """The region's layout; `inside` (which cells are the region's own) is kept by a
        new layout, and must not change for the region."""
        layout = self._by_region.pop(region, None)
        if layout is None or len(layout) > self._max_cells:
            layout = CellLayout(self._ring, inside)
        self._by_region[region] = layout
        while len(self._by_region) > self._max_regions:
            self._by_region.popitem(last=False)
        return layout
