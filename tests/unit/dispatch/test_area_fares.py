"""A fare table on an area: only a service area has one, and it survives the store's
encoding (the same bytes in memory and on Redis)."""

from __future__ import annotations

import pytest

from dispatch.adapters.area_codec import decode_area, encode_area
from dispatch.domain.areas import Area, AreaKind, InvalidArea, check_area
from dispatch.domain.fares import FareTable

SQUARE = (((13.0, 52.0), (13.1, 52.0), (13.1, 52.1), (13.0, 52.1), (13.0, 52.0)),)
FARE = FareTable("GBP", 3.0, 2.0, 0.5, 8.0)


def test_a_service_area_may_have_a_fare() -> None:
    check_area(Area("city", AreaKind.SERVICE_AREA, "City", (SQUARE,), fare=FARE))


@pytest.mark.parametrize("kind", [AreaKind.NO_PICKUP, AreaKind.AIRPORT])
def test_other_kinds_may_not(kind: AreaKind) -> None:
    with pytest.raises(InvalidArea, match="only a service_area has a fare"):
        check_area(Area("x", kind, "X", (SQUARE,), fare=FARE))


@pytest.mark.parametrize("fare", [FARE, None])
def test_the_fare_survives_the_stored_bytes(fare: FareTable | None) -> None:
    area = Area("city", AreaKind.SERVICE_AREA, "City", (SQUARE,), 30.0, 1_700_000_000_000, fare)
    assert decode_area(encode_area(area)) == area


def test_an_area_stored_before_fares_reads_without_one() -> None:
    raw = (
        b'{"id":"old","kind":"service_area","name":"Old","polygons":[[[[13.0,52.0],[13.1,52.0],'
        b'[13.1,52.1],[13.0,52.1],[13.0,52.0]]]],"dwell_s":60.0,"updated_at":1}'
    )
    assert decode_area(raw).fare is None
