"""After a run, from Redis alone: is any driver in two active rides?

Rides live in `dispatch:ride:{<id>}` (field j: the ride as JSON, field v: its version) and a
driver's dispatch state in `dispatch:driver:{<id>}` (status, ride, fence, lease); see
dispatch/adapters/redis_rides.py and redis_drivers.py.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import orjson
from redis.cluster import RedisCluster

COMMITTED = {"accepted", "arrived", "in_progress"}


def _load(client: RedisCluster, pattern: str, fields: list[str]) -> dict[str, list[Any]]:
    keys = [k.decode() for k in client.scan_iter(match=pattern, count=1000)]
    out: dict[str, list[Any]] = {}
    for i in range(0, len(keys), 500):
        batch = keys[i : i + 500]
        pipe = client.pipeline()  # type: ignore[no-untyped-call]
        for k in batch:
            pipe.hmget(k, fields)
        for k, values in zip(batch, pipe.execute(), strict=True):
            out[k] = values
    return out


def check(cluster_url: str) -> dict[str, Any]:
    client = RedisCluster.from_url(cluster_url)
    try:
        rides_raw = _load(client, "dispatch:ride:*", ["j"])
        drivers = _load(client, "dispatch:driver:*", ["status", "ride"])
    finally:
        client.close()
    now_ms = int(time.time() * 1000)
    rides = [orjson.loads(v[0]) for v in rides_raw.values() if v[0]]
    by_status: dict[str, int] = defaultdict(int)
    committed: dict[str, list[str]] = defaultdict(list)
    live_offers: dict[str, list[str]] = defaultdict(list)
    for r in rides:
        by_status[r["status"]] += 1
        if not r.get("driver"):
            continue
        if r["status"] in COMMITTED:
            committed[r["driver"]].append(r["id"])
        elif r["status"] == "offered" and (r.get("expires") or 0) > now_ms:
            live_offers[r["driver"]].append(r["id"])
    # A driver committed to two rides, or holding a live offer besides a committed ride or
    # another live offer. An expired offer not yet swept is no booking: its lease is over.
    doubles = {
        d: committed.get(d, []) + live_offers.get(d, [])
        for d in set(committed) | set(live_offers)
        if len(committed.get(d, [])) + len(live_offers.get(d, [])) > 1
    }
    # Every committed ride is the one its driver's record points at.
    mismatched = [
        ids[0]
        for d, ids in committed.items()
        if len(ids) == 1 and _s(drivers.get(f"dispatch:driver:{{{d}}}", [None, None])[1]) != ids[0]
    ]
    return {
        "rides": len(rides),
        "rides_by_status": dict(sorted(by_status.items())),
        "driver_records": len(drivers),
        "drivers_in_two_active_rides": len(doubles),
        "double_assignment_examples": dict(list(doubles.items())[:10]),
        "committed_rides_not_on_their_driver_record": len(mismatched),
    }


def missing(cluster_url: str, ride_ids: list[str]) -> list[str]:
    """The rides a client was answered 201 for that Redis does not hold: lost writes."""
    client = RedisCluster.from_url(cluster_url)
    try:
        gone = []
        for i in range(0, len(ride_ids), 500):
            batch = ride_ids[i : i + 500]
            pipe = client.pipeline()  # type: ignore[no-untyped-call]
            for ride_id in batch:
                pipe.exists(f"dispatch:ride:{{{ride_id}}}")
            gone += [r for r, n in zip(batch, pipe.execute(), strict=True) if not n]
    finally:
        client.close()
    return gone


def _s(v: bytes | str | None) -> str | None:
    return v.decode() if isinstance(v, bytes) else v
