"""The k-nearest loop (geoindex/knn.py) across regions: the query's own region first, and
the k-th distance found there bounding the scans of the others (no I/O: a region's scan
is modelled on geoindex/lua/knn.lua)."""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Iterable

import numpy as np
import pytest
from h3.api import basic_int as h3
from hypothesis import given, settings
from hypothesis import strategies as st

from geoindex._gridknn import rank
from geoindex.cells import haversine_m, position_score, score_latlng
from geoindex.knn import TIE_M, Candidate, ScanRegions, Scans, k_nearest
from geoindex.model import Neighbor
from geoindex.search import DensityHints, SearchConfig
from geoindex.split import Entry, Layout

PARENT = h3.latlng_to_cell(52.52, 13.405, 5)
LAYOUT = Layout(5, 1, {PARENT: Entry(7)})
CENTRE = h3.cell_to_latlng(PARENT)


class Regions:
    """Drivers per region, and a scan that behaves as knn.lua: rows in order, each skipped
    once its bound is past the cap or past the region's own k-th."""

    def __init__(self, drivers: dict[str, tuple[float, float]], k: int) -> None:
        self.k = k
        self.by_region: dict[int, list[tuple[int, str, float, float]]] = {}
        for driver_id, (lat, lng) in drivers.items():
            score = position_score(lat, lng)
            slat, slng = score_latlng(score)
            region = LAYOUT.write_region(score)
            self.by_region.setdefault(region, []).append((score, driver_id, slat, slng))
        self.calls: list[tuple[set[int], float]] = []  # regions asked, cap

    def scan_for(self, lat: float, lng: float) -> ScanRegions:
        async def scan(scans: Scans, cap_m: float) -> Iterable[bytes]:
            self.calls.append((set(scans), cap_m))
            out: list[bytes] = []
            for region, rows in scans.items():
                best: list[tuple[float, Candidate]] = []
                worst = cap_m
                for lo, hi, bound in rows.tolist():
                    if bound > worst or (len(best) >= self.k and best[self.k - 1][0] < bound):
                        break
                    for score, driver_id, dlat, dlng in self.by_region.get(region, []):
                        d = haversine_m(lat, lng, dlat, dlng)
                        if lo <= score <= hi and d <= worst:
                            best = sorted([*best, (d, (driver_id, 0, dlat, dlng))])
                            if len(best) >= self.k:
                                worst = min(cap_m, best[self.k - 1][0] + TIE_M)
                out += [struct.pack("<ddd", c[2], c[3], c[1]) + c[0].encode() for _, c in best]
            return out

        return scan

    def brute_force(self, lat: float, lng: float, radius_m: float) -> list[tuple[float, str]]:
        every = (
            (haversine_m(lat, lng, dlat, dlng), driver_id)
            for rows in self.by_region.values()
            for _, driver_id, dlat, dlng in rows
        )
        return sorted(x for x in every if x[0] <= radius_m)[: self.k]


def _city(n: int, seed: int, spread_m: float) -> dict[str, tuple[float, float]]:
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        r, a = spread_m * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        lat = CENTRE[0] + math.degrees(r * math.cos(a) / 6_371_008.8)
        lng = CENTRE[1] + math.degrees(
            r * math.sin(a) / (6_371_008.8 * math.cos(math.radians(CENTRE[0])))
        )
        out[f"d{i}"] = (lat, lng)
    return out


def _border_point() -> tuple[float, float]:
    """A point on the edge between the centre's fine region and a neighbour."""
    home = h3.latlng_to_cell(*CENTRE, 7)
    edge = h3.cells_to_directed_edge(home, h3.grid_ring(home, 1)[0])
    (lat1, lng1), (lat2, lng2) = h3.directed_edge_to_boundary(edge)[:2]
    return (lat1 + lat2) / 2, (lng1 + lng2) / 2


async def test_a_border_query_bounds_the_other_regions_by_the_k_th_found_in_its_own() -> None:
    regions = Regions(_city(3_000, 1, 3_000.0), k=10)
    lat, lng = _border_point()
    found = await k_nearest(
        lat, lng, 10, 2_000.0, SearchConfig(), LAYOUT.scans, regions.scan_for(lat, lng),
        DensityHints(),
    )  # fmt: skip
    truth = regions.brute_force(lat, lng, 2_000.0)
    assert [(round(n.distance_m, 6), n.driver_id) for n in found] == [
        (round(d, 6), i) for d, i in truth
    ]
    (home, uncapped), (others, cap) = regions.calls[:2]
    assert len(home) == 1 and uncapped == 2_000.0
    assert home.isdisjoint(others) and others
    # The second phase is bounded by the home region's k-th, no nearer than the answer's.
    assert truth[-1][0] <= cap < 2_000.0


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(0, 400),
    k=st.integers(1, 15),
    radius=st.sampled_from([300.0, 1_500.0, 20_000.0]),
    at=st.tuples(st.floats(-3_000, 3_000), st.floats(-3_000, 3_000)),
)
async def test_the_bounded_loop_finds_what_brute_force_finds(
    seed: int, n: int, k: int, radius: float, at: tuple[float, float]
) -> None:
    regions = Regions(_city(n, seed, 2_500.0), k)
    lat = CENTRE[0] + math.degrees(at[0] / 6_371_008.8)
    lng = CENTRE[1] + math.degrees(at[1] / (6_371_008.8 * math.cos(math.radians(CENTRE[0]))))
    found = await k_nearest(
        lat, lng, k, radius, SearchConfig(), LAYOUT.scans, regions.scan_for(lat, lng),
        DensityHints(),
    )  # fmt: skip
    truth = regions.brute_force(lat, lng, radius)
    assert np.allclose([n.distance_m for n in found], [d for d, _ in truth], atol=1e-6)
    assert {n.driver_id for n in found} <= {
        i for d, i in regions.brute_force(lat, lng, radius) if d <= truth[-1][0] + TIE_M
    }


def _ranked_in_python(
    members: list[bytes], lat: float, lng: float, radius_m: float
) -> list[Neighbor]:
    """What the loop did in Python before rank: the newest fix of each driver (the first
    given among equal times), within the radius, sorted by (distance, id)."""
    latest: dict[str, tuple[str, int, float, float]] = {}
    for m in members:
        at_lat, at_lng, ts = struct.unpack_from("<ddd", m)
        cand = (m[24:].decode(), int(ts), at_lat, at_lng)
        seen = latest.get(cand[0])
        if seen is None or cand[1] > seen[1]:
            latest[cand[0]] = cand
    hits = sorted(
        (d, c) for c in latest.values() if (d := haversine_m(lat, lng, c[2], c[3])) <= radius_m
    )
    return [Neighbor(c[0], d, c[2], c[3], c[1]) for d, c in hits]


@settings(max_examples=300, deadline=None)
@given(
    fixes=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "ab", "é", "z", "日本", "d10", "d9", ""]),
            st.integers(0, 3).map(float),  # fix times: equal ones and newer ones
            st.sampled_from([0.0, 1e-4, -2e-3, 0.01]),  # the same places: ties in distance
            st.sampled_from([0.0, 3e-4, -1e-3]),
        ),
        max_size=40,
    ),
    radius=st.sampled_from([0.0, 100.0, 700.0, 5_000.0]),
)
def test_rank_is_the_newest_fix_of_each_driver_within_the_radius_by_distance_then_id(
    fixes: list[tuple[str, float, float, float]], radius: float
) -> None:
    lat, lng = 52.52, 13.405
    members = [
        struct.pack("<ddd", lat + dlat, lng + dlng, ts) + name.encode()
        for name, ts, dlat, dlng in fixes
    ]
    got = rank(members, lat, lng, radius)
    assert got == _ranked_in_python(members, lat, lng, radius)
    assert all(type(n) is Neighbor and type(n.ts_ms) is int for n in got)


def test_rank_refuses_a_member_too_short_for_its_head() -> None:
    with pytest.raises(ValueError):
        rank([b"\x00" * 23], 0.0, 0.0, 1.0)
