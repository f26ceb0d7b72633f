"""The Redis index's write path computes what h3 would, without calling it per fix."""

from __future__ import annotations

import random

from h3.api import basic_int as h3

from geoindex.cells import FINE_RES, position_score, score_latlng, score_to_cell
from geoindex.redis_index import _FINE_CELL, _FIX, _cell_to_latlng, _latlng_to_cell, _parent_bits


def _cells() -> list[int]:
    rng = random.Random(7)
    points = [(rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(300)]
    cells = [h3.latlng_to_cell(lat, lng, FINE_RES) for lat, lng in points]
    # every pentagon's centre child at res 15, and cells next to the antimeridian and poles
    for pentagon in h3.get_pentagons(0):
        cells.append(h3.cell_to_center_child(pentagon, FINE_RES))
    cells += [h3.latlng_to_cell(lat, lng, FINE_RES) for lat, lng in ((89.99, 0), (-89.99, 0))]
    cells += [h3.latlng_to_cell(10.0, lng, FINE_RES) for lng in (179.9999, -179.9999)]
    return cells


def test_a_scores_parent_by_arithmetic_is_h3s_at_every_resolution() -> None:
    for cell in _cells():
        score = position_score(*h3.cell_to_latlng(cell))
        assert score_to_cell(score) == cell
        for res in range(FINE_RES + 1):
            head, low = _parent_bits(res)
            assert head | score | low == h3.cell_to_parent(cell, res), (hex(cell), res)


def test_the_compiled_h3_calls_give_the_cells_functions_answers() -> None:
    rng = random.Random(11)
    for _ in range(300):
        lat, lng = rng.uniform(-90, 90), rng.uniform(-180, 180)
        score = _latlng_to_cell(lat, lng, FINE_RES) & ((1 << 52) - 1)
        assert score == position_score(lat, lng)
        assert _cell_to_latlng(_FINE_CELL | score) == score_latlng(score)


def test_a_fixs_text_gives_back_the_stored_position_exactly() -> None:
    rng = random.Random(13)
    for _ in range(2000):
        score = position_score(rng.uniform(-90, 90), rng.uniform(-180, 180))
        lat, lng = score_latlng(score)
        text = _FIX % (lat, lng, 1764541234567, "-", score, 0x85283473FFFFFFF, " 1 1 -")
        lat_text, lng_text, ts, seq, score_text, region, *_ = text.split(" ")
        assert (float(lat_text), float(lng_text)) == (lat, lng)
        assert (ts, seq, int(score_text), region) == (
            "1764541234567",
            "-",
            score,
            "85283473fffffff",
        )
