"""Idempotent ride requests on every backend: one record per (rider, key) pair, and the
validated request, not its bytes, decides whether a retry is the same request."""

from __future__ import annotations

import orjson
import pytest

from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import Ride
from dispatch.domain.rides import request as new_ride
from dispatch.service_layer.errors import IdempotencyMismatch
from dispatch.service_layer.ports import Answer, ClaimState
from dispatch.service_layer.ride_requests import (
    new_ride_id,
    record_key,
    request_fingerprint,
    request_ride_once,
)

from .conftest import Backend, Instance

HERE = LatLng(52.52, 13.40)
THERE = LatLng(52.53, 13.41)


def render(ride: Ride) -> bytes:
    return orjson.dumps({"id": ride.id, "rider": ride.rider_id, "pickup": ride.pickup.lat})


def rider(ident: str) -> Principal:
    return Principal(Role.RIDER, ident)


async def test_riders_whose_id_and_key_join_alike_get_their_own_rides(backend: Backend) -> None:
    # "acme" + "b:c" and "acme:b" + "c" both read "acme:b:c" when joined with ':'.
    first = await request_ride_once(backend.deps, rider("acme"), HERE, None, "b:c", render)
    second = await request_ride_once(backend.deps, rider("acme:b"), THERE, None, "c", render)
    a, b = orjson.loads(first), orjson.loads(second)
    assert a["rider"] == "acme" and b["rider"] == "acme:b"
    assert a["id"] != b["id"] and b["pickup"] == THERE.lat
    again = await request_ride_once(backend.deps, rider("acme"), HERE, None, "b:c", render)
    assert again == first


async def test_a_retry_is_the_same_request_when_its_values_are(backend: Backend) -> None:
    deps = backend.deps
    first = await request_ride_once(deps, rider("u1"), LatLng(52.0, 13.0), None, "k", render)
    retry = await request_ride_once(deps, rider("u1"), LatLng(52, 13), None, "k", render)
    assert retry == first
    with pytest.raises(IdempotencyMismatch):
        await request_ride_once(deps, rider("u1"), LatLng(52.0, 13.0), THERE, "k", render)


async def test_over_http_integers_and_explicit_null_dropoff_replay_the_answer(
    service: Instance,
) -> None:
    key = {"Idempotency-Key": "retry-1"}
    who = ("rider", "u1")
    body = {"pickup": {"lat": 52.5, "lng": 13.0}}
    status, first, _ = await service.call("POST", "/v1/rides", who, json=body, headers=key)
    assert status == 201
    for same in (
        {"pickup": {"lat": 52.5, "lng": 13}},
        {"pickup": {"lng": 13.0, "lat": 52.5}, "dropoff": None},
    ):
        status, again, _ = await service.call("POST", "/v1/rides", who, json=same, headers=key)
        assert (status, again) == (201, first)
    other = {"pickup": {"lat": 52.5, "lng": 13.0}, "dropoff": {"lat": 52.6, "lng": 13.1}}
    status, data, _ = await service.call("POST", "/v1/rides", who, json=other, headers=key)
    assert (status, data["error"]) == (422, "idempotency_key_reused")


async def test_the_claim_reads_the_ride_an_earlier_try_stored(backend: Backend) -> None:
    """On Redis a ride request's record shares its ride's slot, so the claim's one script
    also says whether the ride is stored (no read of its own to find an earlier try's)."""
    answer = await request_ride_once(backend.deps, rider("u1"), HERE, None, "k", render)
    ride_id = orjson.loads(answer)["id"]
    key = record_key("u1", "k")
    fp = request_fingerprint(HERE, None)
    done = await backend.deps.idempotency.begin(key, fp, 3_000, ride_id)
    assert done.state is ClaimState.DONE and done.payload == answer
    other = new_ride_id("u1", "k2")  # never stored
    fresh = await backend.deps.idempotency.begin(record_key("u1", "k2"), fp, 3_000, other)
    assert fresh.state is ClaimState.NEW and fresh.ride is None
    if backend.name == "memory":  # the caller reads its dictionary instead
        assert not done.looked and not fresh.looked
        return
    assert done.looked and done.ride is not None and done.ride.id == ride_id
    assert fresh.looked
    await backend.deps.idempotency.forget(key, answer)
    again = await backend.deps.idempotency.begin(key, fp, 3_000, ride_id)
    assert again.state is ClaimState.NEW and again.ride == done.ride


async def test_a_new_ride_stores_its_answer_with_it_while_the_key_is_held(
    backend: Backend,
) -> None:
    """RideStore.create's `answer`: finished with the ride, in one step, only by the
    claim's holder and only when the ride is new."""
    store, rides = backend.deps.idempotency, backend.deps.rides
    ride = new_ride(new_ride_id("u1", "k"), "u1", HERE, None, None, backend.clock.now)
    key, fp = record_key("u1", "k"), request_fingerprint(HERE, None)
    claim = await store.begin(key, fp, 3_000, ride.id)
    assert claim.state is ClaimState.NEW
    stale = Answer(key, "not-the-holder", b"other", 60_000)
    assert await rides.create(ride, stale)  # the ride is stored, the answer is not
    assert (await store.begin(key, fp, 3_000)).state is ClaimState.PENDING
    other = new_ride(new_ride_id("u1", "k2"), "u1", HERE, None, None, backend.clock.now)
    key2 = record_key("u1", "k2")
    claim2 = await store.begin(key2, fp, 3_000, other.id)
    assert await rides.create(other, Answer(key2, claim2.token, b"answer", 60_000))
    done = await store.begin(key2, fp, 3_000)
    assert done.state is ClaimState.DONE and done.payload == b"answer"
    # An existing ride: nothing changes, the answer included.
    assert not await rides.create(ride, Answer(key, claim.token, b"late", 60_000))
    assert (await store.begin(key, fp, 3_000)).state is ClaimState.PENDING
