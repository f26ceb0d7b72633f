"""Fast, exact point-in-area: each area compiled to H3 cells.

A lookup computes the point's res-10 cell once and probes one dict with it (each listed
res-10 cell carries its ancestors' entries too; a cell not listed there has its ancestors
probed, by bit arithmetic on the integer cell). A cell well inside an area answers at
once, as one shared tuple; a cell the boundary may cross answers most of its points from
a raster of it (area_grid: squares the boundary keeps away from hold one answer), the
rest exactly from the few boundary segments near it: the point is on the same side as
the cell's centre (known) if the segment between them crosses the boundary an even
number of times. A configuration too close to call in floating point (the point on an
edge, a vertex on that segment) falls back to a prepared shapely geometry, as do cells
across the antimeridian or near a pole. A point in no listed cell is in no area.
Exactness rests on two margins: a cell counts as inside only when its hexagon grown by a
margin is inside (one edge length for cells coarser than the lookup's, whose descendants
stray past the hexagon by well under one edge; a twentieth of one at the lookup's
resolution, where only the hexagon's arcs differ from straight lines in lat/lng), and
candidate cells are taken from the area grown by 2.5 edges."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from h3.api import basic_int as h3

from dispatch.domain.areas import Area
from dispatch.service_layer.area_grid import _TOO_CLOSE, EXACT, GRID, cell_grids
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
Local = tuple[bool, float, float, tuple[float, ...], float, float, float, float, bytes] | None
_ROUNDING = 1e-9  # degrees (0.1 mm) off holding_near's distance: far past floats' errors


@dataclass(frozen=True, slots=True)
class CompiledArea:
    area: Area
    geometry: shapely.Geometry  # prepared
    res: int
    inside: tuple[int, ...]  # compacted: every point in these cells is in the area
    edge: tuple[int, ...]  # cells at `res` the boundary may cross
    local: tuple[Local, ...] = ()  # per edge cell, in the same order


def _orient(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> float | None:
    """Which side of a->b the point c is (its sign), or None when too close to tell."""
    left = (bx - ax) * (cy - ay)
    right = (by - ay) * (cx - ax)
    det = left - right
    if abs(det) <= _TOO_CLOSE * (abs(left) + abs(right)) or det == 0.0:
        return None
    return det


def local_test(
    centre_in: bool, cx: float, cy: float, segs: tuple[float, ...], x: float, y: float
) -> bool | None:
    """Inside, by the parity of boundary crossings between the point and the cell's
    centre; None when a configuration is too close to call. (Segments whose bounding box
    misses the point-centre segment's are skipped first.)"""
    lox, hix = (x, cx) if x < cx else (cx, x)
    loy, hiy = (y, cy) if y < cy else (cy, y)
    crossings = 0
    for k in range(0, len(segs), 4):
        ax, bx = segs[k], segs[k + 2]
        if (ax < lox and bx < lox) or (ax > hix and bx > hix):
            continue
        ay, by = segs[k + 1], segs[k + 3]
        if (ay < loy and by < loy) or (ay > hiy and by > hiy):
            continue
        d1 = _orient(ax, ay, bx, by, x, y)
        d2 = _orient(ax, ay, bx, by, cx, cy)
        d3 = _orient(x, y, cx, cy, ax, ay)
        d4 = _orient(x, y, cx, cy, bx, by)
        if d1 is None or d2 is None or d3 is None or d4 is None:
            return None
        if (d1 > 0) != (d2 > 0) and (d3 > 0) != (d4 > 0):
            crossings += 1
    return centre_in != bool(crossings & 1)


def _nearest(segs: tuple[float, ...], x: float, y: float) -> float:
    """The distance from (x, y) to the nearest of the segments (ax, ay, bx, by, ...)."""
    best = math.inf
    for k in range(0, len(segs), 4):
        ax, ay, bx, by = segs[k], segs[k + 1], segs[k + 2], segs[k + 3]
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0.0 else ((x - ax) * dx + (y - ay) * dy) / length2
        t = 0.0 if t < 0.0 else 1.0 if t > 1.0 else t
        ex, ey = ax + t * dx - x, ay + t * dy - y
        best = min(best, ex * ex + ey * ey)
    return math.sqrt(best)


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


# A cell's areas: the number of the set of areas it lies wholly inside (AreaIndex's
# _combos: cells share few of them), then those whose boundary may cross it (their places
# in AreaIndex.areas), each with its local test (None: ask shapely). Ints, floats and
# bytes only, so the garbage collector stops tracking these tuples (see build).
Split = tuple[int, tuple[tuple[int, Local], ...]]


@dataclass(slots=True)
class AreaIndex:
    """Which areas hold a point. Built once from compiled areas, then only read."""

    areas: tuple[CompiledArea, ...]
    _levels: tuple[tuple[int, int, int], ...] = ()  # (res, bits to clear, bits to set)
    # What a lookup reads: per listed KEY_RES cell, everything its ancestors list too
    # (one probe answers most points); per coarser cell, its own entries.
    _fine: dict[int, Split] = field(default_factory=dict)
    _coarse: dict[int, Split] = field(default_factory=dict)
    _coarse_levels: tuple[tuple[int, int], ...] = ()  # (bits to clear, bits to set)
    # Each set of areas a cell lies wholly inside, as the areas (what a lookup returns
    # as it is) and as their places in `areas` (what area_batch reads).
    _combos: list[tuple[CompiledArea, ...]] = field(default_factory=list)
    _combo_places: list[tuple[int, ...]] = field(default_factory=list)

    @classmethod
    def build(cls, compiled: Iterable[CompiledArea]) -> AreaIndex:
        index = cls(tuple(compiled))
        levels: set[int] = set()
        table: dict[int, list[tuple[int, object]]] = {}
        for i, c in enumerate(index.areas):
            for cell in c.inside:
                table.setdefault(cell, []).append((i, True))
                levels.add(h3.get_resolution(cell))
            for cell, local in zip(c.edge, c.local or [None] * len(c.edge), strict=True):
                table.setdefault(cell, []).append((i, local))
                levels.add(c.res)
        index._levels = tuple(
            (r, _RES_FIELD | _digits(r), (r << _RES_SHIFT) | _digits(r)) for r in sorted(levels)
        )
        coarse = [(clear, bits) for r, clear, bits in index._levels if r < KEY_RES]
        index._coarse_levels = tuple(coarse)
        numbers: dict[tuple[int, ...], int] = {}

        def split(entries: Iterable[tuple[int, object]]) -> Split:
            inside = tuple(sorted(i for i, how in entries if how is True))
            edges = tuple((i, how) for i, how in entries if how is not True)
            if inside not in numbers:
                numbers[inside] = len(index._combos)
                index._combos.append(tuple(index.areas[i] for i in inside))
                index._combo_places.append(inside)
            return numbers[inside], edges  # type: ignore[return-value]

        split(())  # number 0: inside none
        for cell, entries in table.items():
            if cell & _RES_FIELD != KEY_RES << _RES_SHIFT:
                index._coarse[cell] = split(entries)
                continue
            above = [e for clear, bits in coarse for e in table.get((cell & ~clear) | bits, ())]
            index._fine[cell] = split([*above, *entries])
        return index

    @staticmethod
    def cell_of(lat: float, lng: float) -> int:
        return int(h3.latlng_to_cell(lat, lng, KEY_RES))

    def holding(self, lat: float, lng: float) -> Sequence[CompiledArea]:
        """The areas that hold the point (its boundary included). The point must be
        valid (lat in [-90, 90], lng in [-180, 180]): callers validate first."""
        if not self._levels:
            return ()
        return self._holding(h3.latlng_to_cell(lat, lng, KEY_RES), lat, lng)[0]

    def holding_near(
        self, cell: int, lat: float, lng: float
    ) -> tuple[Sequence[CompiledArea], float]:
        """The areas holding a point already known to be in `cell` (cell_of), and how
        far (degrees, in the plain lng/lat plane) the point may move within its cell and
        keep that answer: math.inf when no boundary crosses the cell, 0.0 when not known.
        (Two points of one cell are joined by a segment inside the cell's grown outline,
        which only the boundary segments listed for the cell can cross; none of those is
        that close.)"""
        found, edges = self._holding(cell, lat, lng)
        near = math.inf
        for _c, how in edges:
            if how is None:
                return found, 0.0
            near = min(near, _nearest(how[3], lng, lat))
        return found, max(near - _ROUNDING, 0.0)

    def _holding(
        self, cell: int, lat: float, lng: float
    ) -> tuple[Sequence[CompiledArea], tuple[tuple[int, Local], ...]]:
        hit = self._fine.get(cell)
        if hit is not None:
            inside, edges = self._combos[hit[0]], hit[1]
        else:  # listed, if at all, only at coarser resolutions
            inside, edges = (), ()
            for clear, bits in self._coarse_levels:
                more = self._coarse.get((cell & ~clear) | bits)
                if more is not None:
                    inside, edges = inside + self._combos[more[0]], edges + more[1]
        if not edges:
            return inside, edges  # the common case: no boundary near, the tuple as it is
        found = list(inside)
        areas = self.areas
        for i, how in edges:
            if how is not None:
                centre_in, cx, cy, segs, x0, y0, per_x, per_y, grid = how
                u, v = (lng - x0) * per_x, (lat - y0) * per_y
                if 0.0 <= u < GRID and 0.0 <= v < GRID:
                    k = int(v) * GRID + int(u)
                    code = (grid[k >> 2] >> ((k & 3) << 1)) & 3  # area_grid.square, inline
                    if code != EXACT:  # a square the boundary keeps away from
                        if code:
                            found.append(areas[i])
                        continue
                answer = local_test(centre_in, cx, cy, segs, lng, lat)
            else:
                answer = None
            if answer is None:
                answer = bool(shapely.intersects_xy(areas[i].geometry, lng, lat))
            if answer:
                found.append(areas[i])
        return found, edges

    def __len__(self) -> int:
        return len(self.areas)


def build_index(areas: Sequence[Area]) -> AreaIndex:
    return AreaIndex.build(compile_area(a) for a in areas)
