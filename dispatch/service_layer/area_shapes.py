"""An area's rings as one valid shapely geometry in plain longitudes ([-180, 180]).

Edges are straight lines in longitude/latitude (as RFC 7946 says GeoJSON's are), and each
takes the shorter way round: an edge spanning more than 180 degrees of longitude crosses
the antimeridian. Such a polygon is unwrapped into continuous longitudes, checked there,
and cut at 180 into the pieces on either side, so every later test is on plain
coordinates. Either winding is accepted; a self-intersecting ring, a hole outside its
polygon or a ring round a pole is refused with InvalidArea."""

from __future__ import annotations

import math

import shapely
from shapely.affinity import translate
from shapely.geometry import Polygon as ShapelyPolygon
from shapely.geometry import box

from dispatch.domain.areas import (
    MAX_SPAN_DEG,
    Area,
    InvalidArea,
    Polygon,
    Ring,
    check_area,
)

_WEST = box(-180.0, -90.0, 180.0, 90.0)
_EAST = box(180.0, -90.0, 540.0, 90.0)  # the unwrapped side past the antimeridian


def _unwrap(ring: Ring, where: str) -> list[tuple[float, float]]:
    """Longitudes made continuous along the ring, each edge taking the shorter way."""
    out = [ring[0]]
    lng = ring[0][0]
    for (x0, _), (x1, y1) in zip(ring, ring[1:], strict=False):
        step = x1 - x0
        if abs(abs(step) - 180.0) < 1e-12:
            raise InvalidArea(f"{where}: an edge spans exactly 180 degrees of longitude")
        if step > 180.0:
            step -= 360.0
        elif step < -180.0:
            step += 360.0
        lng += step
        out.append((lng, y1))
    if abs(out[-1][0] - out[0][0]) > 1e-9:
        raise InvalidArea(f"{where}: the ring goes round a pole")
    out[-1] = out[0]
    return out


def _shifted(points: list[tuple[float, float]], by: float) -> list[tuple[float, float]]:
    return [(x + by, y) for x, y in points] if by else points


def _polygon(polygon: Polygon, p: int) -> ShapelyPolygon:
    outer = _unwrap(polygon[0], f"polygon {p}, ring 0")
    low = min(x for x, _ in outer)
    outer = _shifted(outer, 360.0 if low < -180.0 else 0.0)
    xs = [x for x, _ in outer]
    ys = [y for _, y in outer]
    if max(xs) - min(xs) > MAX_SPAN_DEG or max(ys) - min(ys) > MAX_SPAN_DEG:
        raise InvalidArea(
            f"polygon {p}: spans more than {MAX_SPAN_DEG:g} degrees of latitude or longitude"
        )
    holes = []
    for r, ring in enumerate(polygon[1:], 1):
        hole = _unwrap(ring, f"polygon {p}, ring {r}")
        # The hole in the same unwrapped turn as its polygon.
        first = hole[0][0]
        by = min((-360.0, 0.0, 360.0), key=lambda s: abs(first + s - (min(xs) + max(xs)) / 2))
        holes.append(_shifted(hole, by))
    shape = ShapelyPolygon(outer, holes)
    if not shape.is_valid:
        raise InvalidArea(f"polygon {p}: {shapely.is_valid_reason(shape)}")
    if shape.area <= 0:
        raise InvalidArea(f"polygon {p}: encloses no area")
    return shape


def area_geometry(area: Area) -> shapely.Geometry:
    """The area's polygons as one valid geometry within [-180, 180] (pieces of a polygon
    that crosses the antimeridian on either side); InvalidArea names what is wrong."""
    check_area(area)
    pieces: list[shapely.Geometry] = []
    for p, polygon in enumerate(area.polygons):
        shape = _polygon(polygon, p)
        pieces.append(shape.intersection(_WEST))
        if shape.bounds[2] > 180.0:
            pieces.append(translate(shape.intersection(_EAST), xoff=-360.0))
    # Polygons of one area may overlap or touch: their union is the area.
    merged = shapely.union_all([g for g in pieces if not g.is_empty])
    merged = shapely.make_valid(merged) if not merged.is_valid else merged
    polys = [g for g in shapely.get_parts(merged) if isinstance(g, ShapelyPolygon)]
    if not polys:
        raise InvalidArea("the area encloses no area")
    return shapely.MultiPolygon(polys) if len(polys) > 1 else polys[0]


def degrees_lng(metres: float, lat: float) -> float:
    return metres / (111_320.0 * max(math.cos(math.radians(lat)), 0.01))
