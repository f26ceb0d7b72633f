"""Fast, exact point-in-area: each area compiled to H3 cells.

A lookup computes the point's res-10 cell once and probes one hash table with it (each
listed res-10 cell carries its ancestors' entries too; a cell not listed there has its
ancestors probed, by bit arithmetic on the integer cell). A cell well inside an area
answers at once, as one shared tuple; a cell the boundary may cross answers most of its
points from a raster of it (area_grid: squares the boundary keeps away from hold one
answer), the rest exactly from the few boundary segments near it: the point is on the
same side as the cell's centre (known) if the segment between them crosses the boundary
an even number of times. A configuration too close to call in floating point (the point
on an edge, a vertex on that segment) falls back to a prepared shapely geometry, as do
cells across the antimeridian or near a pole. A point in no listed cell is in no area.
This module compiles the areas and lays out the tables; the lookup runs compiled
(_areaprobe.c). Exactness rests on two margins: a cell counts as inside only when its
hexagon grown by a margin is inside (one edge length for cells coarser than the lookup's,
whose descendants stray past the hexagon by well under one edge; a twentieth of one at
the lookup's resolution, where only the hexagon's arcs differ from straight lines in
lat/lng), and candidate cells are taken from the area grown by 2.5 edges."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from h3.api import basic_int as h3

from dispatch.domain.areas import Area
from dispatch.service_layer._areaprobe import Probe, cell_at
from dispatch.service_layer.area_grid import cell_grids
from dispatch.service_layer.area_shapes import area_geometry

KEY_RES = 10  # a lookup computes this cell, then its ancestors
COARSEST_RES = 4
MAX_CELLS = 20_000  # candidate cells per area: the resolution is chosen to fit
_RES_SHIFT = 52
_RES_FIELD = 0xF << _RES_SHIFT
_HIGH_LAT = 84.0  # cells reaching past this are always tested exactly
STRAY_SAME_RES = 0.05  # edge lengths
STRAY_COARSER = 1.0


def _digits(res: int) -> int:
    """The unused digits of a cell of resolution `res`, all set (7 each), as H3 has them."""
    return (1 << (3 * (15 - res))) - 1


def ancestor(cell: int, res: int) -> int:
    """The ancestor at `res` of an integer H3 cell, as h3.cell_to_parent, by bits."""
    return (cell & ~_RES_FIELD) | (res << _RES_SHIFT) | _digits(res)


# An edge cell's local test: (centre inside?, centre lng, centre lat, the boundary
# segments near the cell as ax, ay, bx, by, ...), then its raster (area_grid: x0, y0,
# squares per degree of lng and of lat, the squares' answers); None: ask shapely.
LocalTest = tuple[bool, float, float, tuple[float, ...], float, float, float, float, bytes]
Local = LocalTest | None


@dataclass(frozen=True, slots=True)
class CompiledArea:
    area: Area
    geometry: shapely.Geometry  # prepared
    res: int
    inside: tuple[int, ...]  # compacted: every point in these cells is in the area
    edge: tuple[int, ...]  # cells at `res` the boundary may cross
    local: tuple[Local, ...] = ()  # per edge cell, in the same order


def _segments(geometry: shapely.Geometry) -> np.ndarray:
    """Every boundary segment of the geometry, one row each: ax, ay, bx, by."""
    rows = []
    for ring in shapely.get_rings(shapely.get_parts(geometry)):
        xy = shapely.get_coordinates(ring)
        rows.append(np.hstack([xy[:-1], xy[1:]]))
    return np.vstack(rows)


def _locals(
    geometry: shapely.Geometry,
    cells: list[int],
    grown: np.ndarray,
    rings: list[list[tuple[float, float]]],
) -> list[Local]:
    """The local test of each edge cell: the segments meeting its grown hexagon (all that
    the segment from a point in the cell to its centre can cross), and its raster."""
    segs = _segments(geometry)
    lines = shapely.linestrings(segs.reshape(-1, 2, 2))
    cell_at, seg_at = shapely.STRtree(lines).query(grown, predicate="intersects")
    near: list[list[int]] = [[] for _ in cells]
    for c, k in zip(cell_at.tolist(), seg_at.tolist(), strict=True):
        near[c].append(k)
    centres = [h3.cell_to_latlng(cell) for cell in cells]
    lats = np.asarray([lat for lat, _ in centres])
    lngs = np.asarray([lng for _, lng in centres])
    centre_in = shapely.intersects_xy(geometry, lngs, lats)
    on_edge = shapely.distance(geometry.boundary, shapely.points(lngs, lats)) < 1e-9
    listed = [segs[k] for k in near]
    grids = cell_grids(
        shapely.bounds(grown), rings, np.stack([lngs, lats], axis=1), centre_in, listed
    )
    out: list[Local] = []
    for i in range(len(cells)):
        if on_edge[i]:
            out.append(None)  # a centre on the boundary: no side to start from
        else:
            seg = tuple(listed[i].ravel().tolist())
            out.append((bool(centre_in[i]), float(lngs[i]), float(lats[i]), seg, *grids[i]))
    return out


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


def _fill(shape: shapely.Geometry, res: int) -> set[int]:
    """The cells at `res` whose centres the shape holds (by h3's own test), the shape
    taken in plain longitudes: parts past the antimeridian are moved round first."""
    cells: set[int] = set()
    if shape.is_empty:
        return cells
    for part in (
        shape.intersection(shapely.box(-180, -90, 180, 90)),
        shapely.affinity.translate(shape.intersection(shapely.box(180, -90, 540, 90)), -360),
        shapely.affinity.translate(shape.intersection(shapely.box(-540, -90, -180, 90)), 360),
    ):
        for poly in shapely.get_parts(part):
            if not isinstance(poly, shapely.Polygon) or poly.is_empty:
                continue
            outline = h3.LatLngPoly(
                [(y, x) for x, y in poly.exterior.coords[:-1]],
                *[[(y, x) for x, y in ring.coords[:-1]] for ring in poly.interiors],
            )
            cells.update(h3.h3shape_to_cells(outline, res))
    return cells


def _lng_scale(geometry: shapely.Geometry) -> float:
    """Degrees of longitude per degree of latitude at the area's worst latitude."""
    top = max(abs(geometry.bounds[1]), abs(geometry.bounds[3]))
    return 1.0 / max(math.cos(math.radians(min(top, 89.0))), 0.05)


def _candidates(geometry: shapely.Geometry, res: int) -> set[int]:
    """Every cell at `res` any point of the area may fall in (and some more)."""
    return _fill(geometry.buffer(2.5 * _edge_deg(res) * _lng_scale(geometry)), res)


def _core(geometry: shapely.Geometry, res: int) -> set[int]:
    """Cells at `res` inside for certain: their centres at least three average edge
    lengths inside, further than any point of the cell or of its descendants strays."""
    return _fill(geometry.buffer(-3.0 * _edge_deg(res) * _lng_scale(geometry)), res)


def compile_area(area: Area) -> CompiledArea:
    """InvalidArea if the area's geometry is not valid (area_shapes)."""
    geometry = area_geometry(area)
    shapely.prepare(geometry)
    res = _resolution(geometry)
    core = _core(geometry, res)
    # Only the band between the core and the outside needs a closer look.
    cells = sorted(_candidates(geometry, res) - core)
    # How far past its hexagon a cell's points may lie: at the lookup's own resolution
    # only the hexagon's edges (arcs, not straight in lat/lng) by a hair; coarser cells
    # stand for descendants that stray up to about half an edge: one edge, to be sure.
    edge = _edge_deg(res) * (STRAY_SAME_RES if res == KEY_RES else STRAY_COARSER)
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
    inside: list[int] = list(core)
    edge_cells = list(always_exact)
    local: list[Local] = [None] * len(always_exact)
    if plain:
        # Hexagons, pentagons and the cells with extra vertices where they cross an
        # icosahedron edge: rings of several lengths, built in one call.
        flat = np.asarray([point for ring in rings for point in ring])
        which = np.repeat(np.arange(len(rings)), [len(ring) for ring in rings])
        hexagons = shapely.polygons(shapely.linearrings(flat, indices=which))
        grown = shapely.buffer(hexagons, np.asarray(margins), quad_segs=1)
        within = shapely.contains(geometry, grown)
        apart = shapely.disjoint(geometry, grown)
        crossed: list[int] = []
        for n, (cell, is_in, is_apart) in enumerate(zip(plain, within, apart, strict=True)):
            if is_in:
                inside.append(cell)
            elif not is_apart:
                crossed.append(n)
        edge_cells += [plain[n] for n in crossed]
        local += _locals(
            geometry, [plain[n] for n in crossed], grown[crossed], [rings[n] for n in crossed]
        )
    return CompiledArea(
        area,
        geometry,
        res,
        tuple(h3.compact_cells(inside)) if inside else (),
        tuple(edge_cells),
        tuple(local),
    )


@dataclass(frozen=True, slots=True)
class AreaIndex:
    """Which areas hold a point. Built once from compiled areas, then only read; the
    lookup itself is compiled (_areaprobe, over the tables _Tables lays out)."""

    areas: tuple[CompiledArea, ...]
    _probe: Probe
    # Per area, its id and dwell (ms), as the presence store takes them (geofence).
    holds: tuple[tuple[str, int], ...] = ()

    @classmethod
    def build(cls, compiled: Iterable[CompiledArea]) -> AreaIndex:
        areas = tuple(compiled)
        levels: set[int] = set()
        table: dict[int, list[tuple[int, Local | bool]]] = {}
        for i, c in enumerate(areas):
            for cell in c.inside:
                table.setdefault(cell, []).append((i, True))
                levels.add(h3.get_resolution(cell))
            for cell, local in zip(c.edge, c.local or [None] * len(c.edge), strict=True):
                table.setdefault(cell, []).append((i, local))
                levels.add(c.res)
        # Coarser cells are found from a resolution-10 cell by bits (ancestor), coarsest
        # first: (bits to clear, bits to set).
        coarse = [
            (_RES_FIELD | _digits(r), (r << _RES_SHIFT) | _digits(r))
            for r in sorted(levels)
            if r < KEY_RES
        ]
        tables = _Tables(areas)
        for cell, entries in table.items():
            if cell & _RES_FIELD != KEY_RES << _RES_SHIFT:
                tables.add(cell, entries)
            else:  # each listed resolution-10 cell carries its ancestors' entries too
                above = [e for clear, bits in coarse for e in table.get((cell & ~clear) | bits, ())]
                tables.add(cell, [*above, *entries])
        holds = tuple((c.area.id, round(c.area.dwell_s * 1000)) for c in areas)
        return cls(areas, tables.probe(coarse), holds)

    @staticmethod
    def cell_of(lat: float, lng: float) -> int:
        return cell_at(lat, lng, KEY_RES)

    def holding(self, lat: float, lng: float) -> Sequence[CompiledArea]:
        """The areas that hold the point (its boundary included). The point must be
        valid (lat in [-90, 90], lng in [-180, 180]): callers validate first."""
        return self._probe.holding(lat, lng)

    def holding_near(
        self, cell: int, lat: float, lng: float
    ) -> tuple[Sequence[CompiledArea], float]:
        """The areas holding a point already known to be in `cell` (cell_of), and how
        far (degrees, in the plain lng/lat plane) the point may move within its cell and
        keep that answer: math.inf when no boundary crosses the cell, 0.0 when not known.
        (Two points of one cell are joined by a segment inside the cell's grown outline,
        which only the boundary segments listed for the cell can cross; none of those is
        that close.)"""
        return self._probe.holding_near(cell, lat, lng)

    @property
    def probe(self) -> Probe:
        """The compiled lookup (geofence's Seen.screen looks up with it and `holds`)."""
        return self._probe

    def __len__(self) -> int:
        return len(self.areas)


class _Tables:
    """An index's cells laid out as _areaprobe reads them: per cell, the number of the
    set of areas it lies wholly inside (cells share few of them; number 0: none) and its
    boundary entries, each an area and its local test (shared by every cell listing it)."""

    def __init__(self, areas: tuple[CompiledArea, ...]) -> None:
        self.areas = areas
        self.cells: list[int] = []
        self.keys: list[int] = []  # per cell: combo, first edge, edges
        self.edges: list[int] = []  # per entry: area, local test (-1: ask shapely)
        self.locals: list[float] = []  # per local test: cx, cy, x0, y0, per x, per y, in
        self.seg_ranges: list[int] = []  # per local test: first segment, segments
        self.rasters: list[bytes] = []
        self.segs: list[float] = []
        self.combos: dict[tuple[int, ...], int] = {(): 0}
        self._local_of: dict[int, int] = {}  # id of a Local -> its number

    def add(self, cell: int, entries: list[tuple[int, Local | bool]]) -> None:
        inside = tuple(sorted(i for i, how in entries if how is True))
        combo = self.combos.setdefault(inside, len(self.combos))
        edges = [(i, how) for i, how in entries if how is not True]
        self.cells.append(cell)
        self.keys += [combo, len(self.edges) // 2, len(edges)]
        for i, how in edges:
            self.edges += [i, self._local(how) if isinstance(how, tuple) else -1]

    def _local(self, how: LocalTest) -> int:
        number = self._local_of.get(id(how))
        if number is None:
            number = self._local_of[id(how)] = len(self.rasters)
            centre_in, cx, cy, segs, x0, y0, per_x, per_y, raster = how
            self.locals += [cx, cy, x0, y0, per_x, per_y, float(centre_in)]
            self.seg_ranges += [len(self.segs) // 4, len(segs) // 4]
            self.segs += segs
            self.rasters.append(raster)
        return number

    def probe(self, coarse: list[tuple[int, int]]) -> Probe:
        combos = list(self.combos)  # in the order numbered
        sizes = [len(c) for c in combos]
        firsts = np.cumsum([0, *sizes[:-1]])
        areas = self.areas

        def exact(i: int, lng: float, lat: float) -> bool:
            return bool(shapely.intersects_xy(areas[i].geometry, lng, lat))

        return Probe(
            cells=np.asarray(self.cells, dtype=np.int64),
            keys=np.asarray(self.keys, dtype=np.int32),
            levels=np.asarray(coarse, dtype=np.int64).reshape(-1),
            edges=np.asarray(self.edges, dtype=np.int32),
            locals=np.asarray(self.locals, dtype=np.float64),
            seg_ranges=np.asarray(self.seg_ranges, dtype=np.int32),
            rasters=b"".join(self.rasters),
            segs=np.asarray(self.segs, dtype=np.float64),
            combo_ranges=np.stack([firsts, sizes], axis=1).astype(np.int32).reshape(-1),
            combo_areas=np.asarray([i for c in combos for i in c], dtype=np.int32),
            combos=tuple(tuple(areas[i] for i in c) for c in combos),
            areas=areas,
            exact=exact,
            res=KEY_RES,
        )


def build_index(areas: Sequence[Area]) -> AreaIndex:
    return AreaIndex.build(compile_area(a) for a in areas)
