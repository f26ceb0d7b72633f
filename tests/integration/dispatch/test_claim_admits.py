"""A ride request's Idempotency-Key claim and its rider's admission (the rate's token and
the active-ride count) in one script: ride ids are minted in their rider's slot, so on a
Redis Cluster the ride, its key's record and the rider's keys share one slot."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from redis.asyncio import RedisCluster
from redis.asyncio.connection import AbstractConnection

from dispatch.adapters.redis_client import ride_key, rider_rides_key
from dispatch.adapters.redis_idempotency import BEGIN, BEGIN_ADMIT
from dispatch.adapters.redis_idempotency import record_key as record_name
from dispatch.adapters.redis_rider_limits import ADMIT, limit_key
from dispatch.bootstrap import bootstrap
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.domain.rides import Ride
from dispatch.service_layer.errors import ActiveRideLimit
from dispatch.service_layer.ports import ClaimState
from dispatch.service_layer.ride_requests import record_key, request_fingerprint, request_ride_once
from dispatch.service_layer.rider_limits import RIDES, Rate, RiderLimits, RiderRateLimited
from dispatch.settings import Settings
from geoindex.redis_pipeline import Pipelined
from tests.fake_clock import FakeClock

from .conftest import Backend

HERE = LatLng(52.52, 13.40)
RIDER = Principal(Role.RIDER, "u1")
EVALSHA = re.compile(rb"EVALSHA\r\n\$40\r\n([0-9a-f]{40})", re.IGNORECASE)


def render(ride: Ride) -> bytes:
    return orjson.dumps({"id": ride.id, "status": ride.status.value})


def scripts_by_write(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """The scripts each write to a Redis connection carries (by sha), from now on: redis-py's
    own writes and the batch path's (as loadtest/bench/profiled.py counts round trips)."""
    writes: list[set[str]] = []
    send, batch = AbstractConnection.send_packed_command, Pipelined._send

    async def sent(conn: AbstractConnection, command: Any, check_health: bool = True) -> None:
        data = command if isinstance(command, bytes) else b"".join(command)
        writes.append({sha.decode() for sha in EVALSHA.findall(data)})
        await send(conn, command, check_health)

    async def batched(pipelined: Pipelined, node: Any, *args: Any) -> None:
        packed: list[bytes] = args[1]
        writes.append({sha.decode() for sha in EVALSHA.findall(b"".join(packed))})
        await batch(pipelined, node, *args)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", sent)
    monkeypatch.setattr(Pipelined, "_send", batched)
    return writes


@pytest.fixture(params=["rider_slot", "plain"])
async def cluster(request: pytest.FixtureRequest, redis_cluster_url: str) -> AsyncIterator[Backend]:
    clock = FakeClock()
    settings = Settings(
        redis_cluster_url=redis_cluster_url, match_window_ms=0, ride_ids=request.param
    )
    async with bootstrap(settings, clock=clock) as runtime:
        yield Backend(request.param, runtime.deps, clock)


@pytest.mark.redis
async def test_the_claim_admits_in_the_same_write_only_for_ids_in_the_riders_slot(
    cluster: Backend, redis_cluster_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cluster.fix("d1")
    await cluster.fix("d2")  # one for each request: an offered ride stays counted
    await request_ride_once(cluster.deps, RIDER, HERE, None, "warm-up", render)  # slot map
    writes = scripts_by_write(monkeypatch)
    answer = await request_ride_once(cluster.deps, RIDER, HERE, None, "k", render)
    monkeypatch.undo()
    ride_id = orjson.loads(answer)["id"]
    with_scripts = [w for w in writes if w & {BEGIN.sha, BEGIN_ADMIT.sha, ADMIT.sha}]
    if cluster.name == "rider_slot":
        assert len(ride_id) == 2 + 37
        assert with_scripts[0] == {BEGIN_ADMIT.sha}  # the first write: claimed and admitted
        assert len(with_scripts) == 1
    else:  # minted as before: the rider's keys are in another slot, admitted apart
        assert len(ride_id) == 2 + 32
        assert with_scripts == [{BEGIN.sha}, {ADMIT.sha}]
    # Redis's own word on the slots
    client = RedisCluster.from_url(redis_cluster_url)
    try:
        keys = [ride_key(ride_id), record_name(record_key("u1", "k", len(ride_id) > 34))]
        rider_keys = [rider_rides_key("u1"), limit_key("u1", RIDES)]
        slots = {k: await client.execute_command("CLUSTER KEYSLOT", k) for k in keys + rider_keys}
        assert slots[keys[0]] == slots[keys[1]]
        assert slots[rider_keys[0]] == slots[rider_keys[1]]
        assert (slots[keys[0]] == slots[rider_keys[0]]) is (cluster.name == "rider_slot")
        assert await client.exists(*keys) == 2
        assert await client.zscore(rider_keys[0], ride_id) is not None  # counted
    finally:
        await client.aclose()
    again = await request_ride_once(cluster.deps, RIDER, HERE, None, "k", render)
    assert again == answer


async def test_a_claim_admitting_keeps_the_counting_rules(backend: Backend) -> None:
    """Answered from its key: no token, no count; refused by the cap or the rate: nothing
    stored, and the key claimable again."""
    rate = Rate(per_s=0.001, burst=3)  # no token comes back during the test
    limits = backend.deps.rider_limits
    assert limits is not None
    deps = replace(backend.deps, rider_limits=RiderLimits(limits.store, {RIDES: rate}))
    for d in ("d1", "d2", "d3"):
        await backend.fix(d)
    first = await request_ride_once(deps, RIDER, HERE, None, "k1", render)  # token 1
    for _ in range(3):
        assert await request_ride_once(deps, RIDER, HERE, None, "k1", render) == first
    second = await request_ride_once(deps, RIDER, HERE, None, "k2", render)  # token 2
    assert orjson.loads(first)["status"] == orjson.loads(second)["status"] == "offered"
    with pytest.raises(ActiveRideLimit):  # the cap (2): token 3 taken, nothing counted
        await request_ride_once(deps, RIDER, HERE, None, "k3", render)
    with pytest.raises(RiderRateLimited):  # no token left
        await request_ride_once(deps, RIDER, HERE, None, "k4", render)
    fp = request_fingerprint(HERE, None)
    for key in ("k3", "k4"):
        name = record_key("u1", key)
        assert await deps.rides.get(name) is None  # the record is named by its ride
        claim = await deps.idempotency.begin(name, fp, 3_000)
        assert claim.state is ClaimState.NEW  # given back: claimable again
        await deps.idempotency.abandon(name, claim.token)
    held = await deps.active_rides.hold("u1", "probe", backend.clock.now, 3)
    assert held == []  # only the two offered rides were counted: a third fits
