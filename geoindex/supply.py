"""The supply heatmap: which cells to count for an area, and how to name them (hex
strings, or H3 ids as a uint64 array, checked without a Python call per cell); counts per
cell, of one product or of several at once."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from h3.api import basic_int as h3

from geoindex import limits
from geoindex.cells import SCORE_MASK, average_edge_m, cell_hex, haversine_m, score_range
from geoindex.errors import InvalidQuery

MAX_SUPPLY_CELLS = 5_000

SupplyCell = tuple[int, int, int, int]  # cell, region, lo score, hi score
Counts = npt.NDArray[np.int64]
CellIds = npt.NDArray[np.uint64]


def supply_cells(
    lat: float, lng: float, radius_m: float, resolution: int, region_res: int
) -> list[SupplyCell]:
    """Cells of `resolution` whose centre lies within radius_m of (lat, lng)."""
    lat, lng = limits.check_latlng(lat, lng)
    radius_m = limits.check_radius(radius_m)
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise InvalidQuery("resolution must be an integer")
    if not region_res <= resolution <= 15:
        raise InvalidQuery(f"resolution must be in [{region_res}, 15]")
    edge = average_edge_m(resolution)
    # Ring j's nearest centres are about 1.5 * j edges away: one ring spare for distortion.
    rings = int(radius_m / (1.3 * edge)) + 2
    if 3 * rings * (rings + 1) + 1 > 4 * MAX_SUPPLY_CELLS:
        raise InvalidQuery(
            f"area too large for resolution {resolution}: at most {MAX_SUPPLY_CELLS} cells"
        )
    origin = h3.latlng_to_cell(lat, lng, resolution)
    cells = [
        c
        for c in h3.grid_disk(origin, rings)
        if haversine_m(lat, lng, *h3.cell_to_latlng(c)) <= radius_m
    ]
    if len(cells) > MAX_SUPPLY_CELLS:
        raise InvalidQuery(
            f"area too large for resolution {resolution}: at most {MAX_SUPPLY_CELLS} cells"
        )
    return [(c, int(h3.cell_to_parent(c, region_res)), *score_range(c)) for c in cells]


_CELL_HEX = re.compile(r"[0-9a-f]{15}")


def named_cells(cells: Sequence[str], region_res: int) -> list[SupplyCell]:
    """The cells a caller names (H3 hex strings, from the region's resolution to 15),
    validated, in the shape count_supply takes."""
    if isinstance(cells, str) or not isinstance(cells, Sequence):
        raise InvalidQuery("cells must be a sequence of H3 cell ids")
    if len(cells) > MAX_SUPPLY_CELLS:
        raise InvalidQuery(f"at most {MAX_SUPPLY_CELLS} cells per call")
    known = _NAMED.setdefault(region_res, {})
    try:
        # One pass, one dict look-up a cell once seen (a recompute names thousands of
        # cells every few seconds): what is not a string fails in _named's pattern
        # match, or in the look-up if unhashable.
        return [known.get(name) or _named(name, region_res, known) for name in cells]
    except TypeError:
        bad = [name for name in cells if not isinstance(name, str)]
        if not bad:
            raise
        raise InvalidQuery(f"not an H3 cell id: {str(bad[0])[:20]!r}") from None


MAX_NAMED = 65_536  # checked cells kept per region resolution; past it, start over
_NAMED: dict[int, dict[str, SupplyCell]] = {}


def _named(name: str, region_res: int, known: dict[str, SupplyCell]) -> SupplyCell:
    """One cell checked, and kept in `known` (errors are not kept)."""
    if not _CELL_HEX.fullmatch(name):
        raise InvalidQuery(f"not an H3 cell id: {name[:20]!r}")
    cell = int(name, 16)
    if not h3.is_valid_cell(cell):
        raise InvalidQuery(f"not an H3 cell id: {name!r}")
    if h3.get_resolution(cell) < region_res:
        raise InvalidQuery(f"cell {name} is coarser than a region (resolution {region_res})")
    if len(known) >= MAX_NAMED:
        known.clear()
    checked = known[name] = (cell, int(h3.cell_to_parent(cell, region_res)), *score_range(cell))
    return checked


# The bits of an H3 index (h3's h3Index.h): a reserved high bit, the mode (1: a cell), three
# reserved bits, the resolution, the base cell, then 15 digits of 3 bits, finest last.
_U = np.uint64
_DIGIT_SHIFTS = np.array([3 * (15 - r) for r in range(1, 16)], dtype=np.uint64)
_RES_SHIFT, _BASE_SHIFT = _U(52), _U(45)
_PENTAGON_BASES = np.array(
    sorted(h3.get_base_cell_number(p) for p in h3.get_pentagons(0)), dtype=np.uint64
)
_PENTAGON_BASE = np.zeros(122, dtype=np.bool_)
_PENTAGON_BASE[_PENTAGON_BASES.astype(np.intp)] = True
_DIGIT_LOW = _U(sum(1 << int(shift) for shift in _DIGIT_SHIFTS))  # each digit's lowest bit
# Per resolution r: the lowest bit of digits 1..r; every bit of digits r+1..15.
_USED_LOW = np.array(
    [sum(1 << 3 * (15 - d) for d in range(1, r + 1)) for r in range(16)], dtype=np.uint64
)
_UNUSED = np.array([(1 << 3 * (15 - r)) - 1 for r in range(16)], dtype=np.uint64)


def valid_cell_ids(ids: CellIds) -> npt.NDArray[np.bool_]:
    """h3.is_valid_cell of each id, as numpy passes: the mode, the reserved bits, the base
    cell, digits 1..res in 0..6 and the unused ones 7, and no first non-zero digit 1 under
    a pentagon's base cell (tests/unit/test_supply_ids.py holds it to h3's)."""
    c = np.asarray(ids, dtype=np.uint64)
    ok = (c >> _U(56)) == _U(8)  # high bit 0, mode 1, reserved bits 0
    res = ((c >> _RES_SHIFT) & _U(15)).astype(np.intp)
    base = ((c >> _BASE_SHIFT) & _U(127)).astype(np.intp)
    ok &= base < 122
    # Each digit's lowest bit stands for the digit: set where the digit is 7, or non-zero.
    sevens = c & (c >> _U(1)) & (c >> _U(2)) & _DIGIT_LOW
    ok &= (sevens & _USED_LOW[res]) == _U(0)  # no used digit is 7
    ok &= (c & _UNUSED[res]) == _UNUSED[res]  # every unused digit is 7
    under_pentagon = _PENTAGON_BASE[np.minimum(base, 121)] & ok
    if under_pentagon.any():  # a handful of cells: the digits one by one
        at = np.flatnonzero(under_pentagon)
        digits = (c[at, None] >> _DIGIT_SHIFTS) & _U(7)
        nonzero = (digits != _U(0)) & (np.arange(1, 16) <= res[at, None])
        first = digits[np.arange(len(at)), nonzero.argmax(axis=1)]
        ok[at] &= ~(nonzero.any(axis=1) & (first == _U(1)))
    out: npt.NDArray[np.bool_] = ok
    return out


@dataclass(frozen=True, slots=True)
class IdRows:
    """Checked cells given as ids, in the caller's order: each one's region (its parent at
    the region resolution, by its digits) and the score range of its res-15 cells."""

    cells: CellIds
    regions: CellIds
    lo: CellIds
    hi: CellIds

    def as_cells(self) -> list[SupplyCell]:
        return list(
            zip(
                map(int, self.cells),
                map(int, self.regions),
                map(int, self.lo),
                map(int, self.hi),
                strict=True,
            )
        )


def id_rows(ids: CellIds, region_res: int) -> IdRows:
    """Cells named by their H3 ids (a uint64 array, from the region's resolution to 15)
    checked as named_cells checks hex names, with no Python call per cell: a caller naming
    thousands of cells every few seconds (the market's recompute) from ids it keeps."""
    if not isinstance(ids, np.ndarray) or ids.dtype != np.uint64 or ids.ndim != 1:
        raise InvalidQuery("cell ids must be a one-dimensional uint64 array")
    if len(ids) > MAX_SUPPLY_CELLS:
        raise InvalidQuery(f"at most {MAX_SUPPLY_CELLS} cells per call")
    valid = valid_cell_ids(ids)
    res = (ids >> _RES_SHIFT) & _U(15)
    if not valid.all():
        bad = int(ids[np.argmin(valid)])
        raise InvalidQuery(f"not an H3 cell id: {bad:x}")
    if (res < region_res).any():
        bad = int(ids[np.argmax(res < region_res)])
        raise InvalidQuery(f"cell {bad:x} is coarser than a region (resolution {region_res})")
    # The parent: resolution field set to region_res, the digits below it all 7.
    below = _U((1 << (3 * (15 - region_res))) - 1)
    regions = (ids & ~(_U(15) << _RES_SHIFT)) | (_U(region_res) << _RES_SHIFT) | below
    hi = ids & _U(SCORE_MASK)
    lo = hi - ((_U(1) << (_U(3) * (_U(15) - res))) - _U(1))
    return IdRows(ids, regions, lo, hi)


def any_split(parents: Collection[int], regions: CellIds) -> bool:
    """Whether any of `regions` is a split parent (split.Layout.parents): its cells are
    counted per sub-region (split.Layout.supply_cells), not as their own rows."""
    if not parents:
        return False
    split = np.fromiter(parents, dtype=np.uint64, count=len(parents))
    return bool(np.isin(regions, split).any())


def count_supply(cells: list[SupplyCell], count: Callable[[int, int, int], int]) -> dict[str, int]:
    """Counts per cell; a cell listed once per region (a split region's, split.py) adds
    its regions' counts up."""
    out: dict[str, int] = {}
    for cell, region, lo, hi in cells:
        n = count(region, lo, hi)
        if n:
            name = cell_hex(cell)
            out[name] = out.get(name, 0) + n
    return out


def checked_products(products: Sequence[str]) -> tuple[str, ...]:
    """The products of a supply table, each checked, in the caller's order."""
    if isinstance(products, str) or not isinstance(products, Sequence):
        raise InvalidQuery("products must be a sequence of product names")
    return tuple(limits.check_product(p) for p in products)


def table_columns(named: list[SupplyCell], rows: list[SupplyCell], counts: Counts) -> Counts:
    """A supply table (a row per product, a column per named cell) from the counts of
    `rows` (a column per row): the named cells as a split layout lists them, one row
    per region that may hold drivers in a cell (split.Layout.supply_cells), whose counts
    add up. Unsplit, rows are the named cells, one each, in order."""
    if len(rows) == len(named):
        return counts
    distinct: dict[int, int] = {}
    for cell, *_ in named:
        distinct.setdefault(cell, len(distinct))
    per_cell = np.zeros((counts.shape[0], len(distinct)), dtype=np.int64)
    where = np.fromiter((distinct[r[0]] for r in rows), dtype=np.intp, count=len(rows))
    np.add.at(per_cell.T, where, counts.T)
    cols = np.fromiter((distinct[c[0]] for c in named), dtype=np.intp, count=len(named))
    out: Counts = per_cell[:, cols]
    return out
