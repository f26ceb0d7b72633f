"""Areas that cannot be stored are refused with a message naming the ring and the fault;
either winding and polygons across the antimeridian are accepted."""

from __future__ import annotations

import pytest
import shapely

from dispatch.domain.areas import MAX_VERTICES, Area, AreaKind, InvalidArea, Polygon
from dispatch.service_layer.area_shapes import area_geometry

SQUARE = ((13.0, 52.0), (13.1, 52.0), (13.1, 52.1), (13.0, 52.1), (13.0, 52.0))


def area(*polygons: Polygon, name: str = "x", dwell_s: float = 60.0) -> Area:
    return Area("a1", AreaKind.SERVICE_AREA, name, polygons, dwell_s)


BOW_TIE = ((13.0, 52.0), (13.1, 52.1), (13.1, 52.0), (13.0, 52.1), (13.0, 52.0))
FAR_HOLE = ((14.0, 52.0), (14.1, 52.0), (14.1, 52.1), (14.0, 52.0))
NAN = float("nan")


@pytest.mark.parametrize(
    ("rings", "message"),
    [
        ([SQUARE[:-1]], "not closed"),
        ([SQUARE[:3]], "at least 4 positions"),
        ([((13.0, 52.0), (13.1, 52.0), (13.0, 52.0), (13.0, 52.0))], "3 distinct"),
        ([BOW_TIE], "Self-intersection"),
        ([((13.0, 86.0), (13.1, 86.0), (13.1, 86.1), (13.0, 86.0))], "latitude"),
        ([((193.0, 52.0), (13.1, 52.0), (13.1, 52.1), (193.0, 52.0))], "longitude"),
        ([((13.0, NAN), (13.1, 52.0), (13.1, 52.1), (13.0, NAN))], "finite"),
        ([SQUARE, FAR_HOLE], "Hole lies outside"),
        ([((0.0, 0.0), (11.0, 0.0), (11.0, 1.0), (0.0, 0.0))], "spans more than"),
        # every edge eastwards by 120 degrees: round the pole
        ([((-170.0, 80.0), (-50.0, 80.0), (70.0, 80.0), (-170.0, 80.0))], "round a pole"),
        ([((0.0, 10.0), (180.0, 10.0), (180.0, 11.0), (0.0, 10.0))], "exactly 180"),
        ([], "no rings"),
    ],
)
def test_a_broken_polygon_is_refused_with_the_reason(rings: list, message: str) -> None:
    with pytest.raises(InvalidArea, match=message):
        area_geometry(area(tuple(rings)))


def test_limits_on_names_vertices_and_dwell() -> None:
    with pytest.raises(InvalidArea, match="name"):
        area_geometry(area((SQUARE,), name=" "))
    with pytest.raises(InvalidArea, match="dwell_s"):
        area_geometry(area((SQUARE,), dwell_s=-1))
    with pytest.raises(InvalidArea, match="at least one polygon"):
        area_geometry(area())
    many = tuple((13.0 + i * 1e-5, 52.0 + (i % 2) * 1e-5) for i in range(MAX_VERTICES))
    with pytest.raises(InvalidArea, match="at most"):
        area_geometry(area(((*many, many[0]),)))


def test_either_winding_is_the_same_area() -> None:
    ccw = area_geometry(area((SQUARE,)))
    cw = area_geometry(area((tuple(reversed(SQUARE)),)))
    assert ccw.equals(cw) and ccw.area == pytest.approx(0.01)


def test_a_polygon_across_the_antimeridian_is_cut_in_two() -> None:
    ring = ((179.0, -17.0), (-179.0, -17.0), (-179.0, -16.0), (179.0, -16.0), (179.0, -17.0))
    g = area_geometry(area((ring,)))
    assert g.geom_type == "MultiPolygon" and g.area == pytest.approx(2.0)
    assert shapely.intersects_xy(g, 179.9, -16.5) and shapely.intersects_xy(g, -179.9, -16.5)
    assert not shapely.intersects_xy(g, 0.0, -16.5)


def test_overlapping_polygons_of_one_area_are_merged() -> None:
    shifted = tuple((x + 0.05, y) for x, y in SQUARE)
    g = area_geometry(area((SQUARE,), (shifted,)))
    assert g.is_valid and g.area == pytest.approx(0.015)
