"""Ride ids minted in their rider's Redis Cluster slot: checked against redis-py's own
slot function, for every slot, and for the ids both forms the API accepts."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from dispatch.adapters.redis_client import ride_key, rider_rides_key
from dispatch.adapters.redis_idempotency import record_key as record_name
from dispatch.adapters.redis_rider_limits import limit_key
from dispatch.entrypoints.schemas import ride_id as valid_ride_id
from dispatch.service_layer.errors import NotFound
from dispatch.service_layer.ride_requests import new_ride_id, record_key
from dispatch.service_layer.slot_ids import SLOTS, to_slot

ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-"
rider_ids = st.text(ID_CHARS, min_size=1, max_size=64)
keys = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=128)


def slot(key: str) -> int:
    return key_slot(key.encode())


@given(rider_ids, keys)
def test_a_keyed_ride_and_its_record_share_their_riders_slot(rider: str, key: str) -> None:
    ride_id = new_ride_id(rider, key)
    assert new_ride_id(rider, key) == ride_id  # a retry finds the same ride
    assert re.fullmatch(r"r_[0-9a-f]{37}", ride_id)
    assert ride_id.startswith(new_ride_id(rider, key, in_rider_slot=False))
    rider_slot = slot(rider_rides_key(rider))
    assert slot(limit_key(rider, "rides")) == rider_slot
    assert slot(ride_key(ride_id)) == rider_slot
    assert slot(record_name(record_key(rider, key))) == rider_slot


@given(rider_ids)
def test_a_random_ride_id_is_in_its_riders_slot_too(rider: str) -> None:
    ride_id = new_ride_id(rider, None)
    assert slot(ride_key(ride_id)) == slot(rider_rides_key(rider))
    assert new_ride_id(rider, None) != ride_id


def test_plain_ids_are_the_ones_minted_before() -> None:
    # "r_" and the first 32 hex digits of sha256("u1\0k"): what older instances mint.
    assert new_ride_id("u1", "k", in_rider_slot=False) == "r_9d96789a340ffdb657e935a5687719c9"


def test_every_slot_is_reached_from_any_base() -> None:
    for base in ("r_" + "0" * 32, "r_" + "f" * 32):
        for target in range(SLOTS):
            assert slot(ride_key(to_slot(base, target))) == target


def test_the_api_accepts_both_forms_of_ride_id_and_nothing_else() -> None:
    for good in (new_ride_id("u1", "k"), new_ride_id("u1", "k", in_rider_slot=False)):
        assert valid_ride_id(good) == good
    for bad in ("r_" + "0" * 33, "r_" + "0" * 36, "r_" + "0" * 38, "r_" + "A" * 37):
        with pytest.raises(NotFound):
            valid_ride_id(bad)
