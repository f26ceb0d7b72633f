"""The supply heatmap: which cells to count for an area, and how to name them; counts
per cell, of one product or of several at once."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from h3.api import basic_int as h3

from geoindex import limits
from geoindex.cells import average_edge_m, cell_hex, haversine_m, score_range
from geoindex.errors import InvalidQuery

MAX_SUPPLY_CELLS = 5_000

SupplyCell = tuple[int, int, int, int]  # cell, region, lo score, hi score
Counts = npt.NDArray[np.int64]


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
