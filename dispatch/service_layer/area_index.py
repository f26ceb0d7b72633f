"""Fast, exact point-in-area: each area compiled to H3 cells.

A lookup computes the point's res-10 cell once and walks its ancestors (bit arithmetic on
the integer cell) through one dict. A cell well inside an area answers at once; a cell
the boundary may cross falls back to an exact test on a prepared shapely geometry; a
point in no listed cell is in no area. Exactness rests on two margins, both generous:
a cell counts as inside only when the cell's hexagon grown by one edge length is inside
(an H3 cell's descendants stray past its hexagon by well under one edge), and candidate
cells are taken from the area grown by 2.5 edge lengths."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from h3.api import basic_int as h3

from dispatch.domain.areas import Area
from dispatch.service_layer.area_shapes import area_geometry

KEY_RES = 10  # a lookup computes this cell, then its ancestors
COARSEST_RES = 4
MAX_CELLS = 20_000  # candidate cells per area: the resolution is chosen to fit
_RES_SHIFT = 52
_RES_FIELD = 0xF << _RES_SHIFT
_HIGH_LAT = 84.0  # cells reaching past this are always tested exactly


def _digits(res: int) -> int:
    """The unused digits of a cell of resolution `res`, all set (7 each), as H3 has them."""
    return (1 << (3 * (15 - res))) - 1


def ancestor(cell: int, res: int) -> int:
    """The ancestor at `res` of an integer H3 cell, as h3.cell_to_parent, by bits."""
    return (cell & ~_RES_FIELD) | (res << _RES_SHIFT) | _digits(res)


@dataclass(frozen=True, slots=True)
class CompiledArea:
    area: Area
    geometry: shapely.Geometry  # prepared
    res: int
    inside: tuple[int, ...]  # compacted: every point in these cells is in the area
    edge: tuple[int, ...]  # cells at `res` the boundary may cross


def _resolution(geometry: shapely.Geometry) -> int:
    minx, miny, maxx, maxy = geometry.bounds
    mid = math.radians((miny + maxy) / 2)
    km2 = (maxy - miny) * 111.32 * (maxx - minx) * 111.32 * max(math.cos(mid), 0.05)
    for res in range(KEY_RES, COARSEST_RES - 1, -1):
        if km2 / h3.average_hexagon_area(res, "km^2") <= MAX_CELLS:
            return res
    return COARSEST_RES


def _edge_deg(res: int) -> float:
    return float(h3.average_hexagon_edge_length(res, "m")) / 111_320.0


def _candidates(geometry: shapely.Geometry, res: int) -> set[int]:
    """Every cell at `res` any point of the area may fall in (and some more)."""
    edge = _edge_deg(res)
    top = max(abs(geometry.bounds[1]), abs(geometry.bounds[3]))
    grown = geometry.buffer(2.5 * edge / max(math.cos(math.radians(min(top, 89.0))), 0.05))
    cells: set[int] = set()
    for part in (
        grown.intersection(shapely.box(-180, -90, 180, 90)),
        shapely.affinity.translate(grown.intersection(shapely.box(180, -90, 540, 90)), -360),
        shapely.affinity.translate(grown.intersection(shapely.box(-540, -90, -180, 90)), 360),
    ):
        for poly in shapely.get_parts(part):
            if not isinstance(poly, shapely.Polygon) or poly.is_empty:
                continue
            shape = h3.LatLngPoly(
                [(y, x) for x, y in poly.exterior.coords[:-1]],
                *[[(y, x) for x, y in ring.coords[:-1]] for ring in poly.interiors],
            )
            cells.update(h3.h3shape_to_cells(shape, res))
    return cells


def compile_area(area: Area) -> CompiledArea:
    """InvalidArea if the area's geometry is not valid (area_shapes)."""
    geometry = area_geometry(area)
    shapely.prepare(geometry)
    res = _resolution(geometry)
    cells = sorted(_candidates(geometry, res))
    edge = _edge_deg(res)
    plain: list[int] = []
    rings: list[list[tuple[float, float]]] = []
    margins: list[float] = []
    always_exact: list[int] = []
    for cell in cells:
        boundary = h3.cell_to_boundary(cell)
        lngs = [lng for _, lng in boundary]
        lats = [lat for lat, _ in boundary]
        if max(lngs) - min(lngs) > 180 or max(abs(v) for v in lats) > _HIGH_LAT:
            always_exact.append(cell)  # across the antimeridian or near a pole
            continue
        plain.append(cell)
        rings.append([(lng, lat) for lat, lng in boundary])
        top = max(abs(v) for v in lats)
        margins.append(edge / max(math.cos(math.radians(top)), 0.05))
    inside: list[int] = []
    edge_cells = list(always_exact)
    if plain:
        # Hexagons, pentagons and the cells with extra vertices where they cross an
        # icosahedron edge: rings of several lengths, built in one call.
        flat = np.asarray([point for ring in rings for point in ring])
        which = np.repeat(np.arange(len(rings)), [len(ring) for ring in rings])
        hexagons = shapely.polygons(shapely.linearrings(flat, indices=which))
        grown = shapely.buffer(hexagons, np.asarray(margins), quad_segs=1)
        within = shapely.contains(geometry, grown)
        apart = shapely.disjoint(geometry, grown)
        for cell, is_in, is_apart in zip(plain, within, apart, strict=True):
            if is_in:
                inside.append(cell)
            elif not is_apart:
                edge_cells.append(cell)
    return CompiledArea(
        area, geometry, res, tuple(h3.compact_cells(inside)) if inside else (), tuple(edge_cells)
    )


@dataclass(slots=True)
class AreaIndex:
    """Which areas hold a point. Built once from compiled areas, then only read."""

    areas: tuple[CompiledArea, ...]
    _cells: dict[int, list[tuple[int, bool]]] = field(default_factory=dict)
    _levels: tuple[tuple[int, int, int], ...] = ()  # (res, bits to clear, bits to set)

    @classmethod
    def build(cls, compiled: Iterable[CompiledArea]) -> AreaIndex:
        index = cls(tuple(compiled))
        levels: set[int] = set()
        for i, c in enumerate(index.areas):
            for cell in c.inside:
                index._cells.setdefault(cell, []).append((i, True))
                levels.add(h3.get_resolution(cell))
            for cell in c.edge:
                index._cells.setdefault(cell, []).append((i, False))
                levels.add(c.res)
        index._levels = tuple(
            (r, _RES_FIELD | _digits(r), (r << _RES_SHIFT) | _digits(r)) for r in sorted(levels)
        )
        return index

    def holding(self, lat: float, lng: float) -> list[CompiledArea]:
        """The areas that hold the point (its boundary included). The point must be
        valid (lat in [-90, 90], lng in [-180, 180]): callers validate first."""
        if not self._levels:
            return []
        cell = h3.latlng_to_cell(lat, lng, KEY_RES)
        found: list[CompiledArea] = []
        get = self._cells.get
        for _res, clear, bits in self._levels:
            entries = get((cell & ~clear) | bits)
            if entries is None:
                continue
            for i, inside in entries:
                c = self.areas[i]
                if inside or shapely.intersects_xy(c.geometry, lng, lat):
                    found.append(c)
        return found

    def __len__(self) -> int:
        return len(self.areas)


def build_index(areas: Sequence[Area]) -> AreaIndex:
    return AreaIndex.build(compile_area(a) for a in areas)
