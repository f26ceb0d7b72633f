"""The matching policy: radius steps, candidate order and the quoted ETA."""

from __future__ import annotations

import pytest

from dispatch.domain.geo import LatLng, haversine_m
from dispatch.domain.matching import Candidate, MatchingPolicy, next_candidates
from dispatch.domain.principals import Principal, Role, parse_subject


@pytest.mark.parametrize(
    "kwargs",
    [
        {"radius_steps_m": ()},
        {"radius_steps_m": (2_000.0, 1_000.0)},
        {"max_attempts": 0},
        {"candidates_per_step": 0},
        {"offer_timeout_ms": 0},
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MatchingPolicy(**kwargs)  # type: ignore[arg-type]


def test_candidates_come_nearest_first_then_by_id_without_decliners_or_repeats() -> None:
    found = [
        Candidate("c", 300.0),
        Candidate("b", 100.0),
        Candidate("a", 100.0),
        Candidate("x", 50.0),
    ]
    tried: set[str] = set()
    first = next_candidates(found, excluded=["x"], tried=tried)
    assert [c.driver_id for c in first] == ["a", "b", "c"]
    wider = found + [Candidate("d", 900.0)]
    assert [c.driver_id for c in next_candidates(wider, ["x"], tried)] == ["d"]


def test_haversine_known_distance_berlin_to_paris() -> None:
    d = haversine_m(LatLng(52.5200, 13.4050), LatLng(48.8566, 2.3522))
    assert 877_000 < d < 880_000


def test_subjects_parse_into_principals() -> None:
    assert parse_subject("driver:d42") == Principal(Role.DRIVER, "d42")
    assert parse_subject("rider:r7").subject == "rider:r7"
    assert parse_subject("fleet:gw1").role is Role.FLEET


@pytest.mark.parametrize(
    "bad", ["d42", "admin:x", "driver:", "driver:a b", "driver:{x}", "rider:" + "x" * 65]
)
def test_bad_subjects_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_subject(bad)
