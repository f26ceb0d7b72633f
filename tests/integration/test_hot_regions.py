"""`python -m loadtest.hot_regions` against a real Redis Cluster under a skewed load written
through the real geo index: the hot region ranks first and is the one proposed."""

from __future__ import annotations

import asyncio
import contextlib
import time

import h3
import orjson
import pytest
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from dispatch.adapters.redis_market import SCRIPTS as MARKET_SCRIPTS
from dispatch.adapters.redis_market import RedisMarketStore
from dispatch.domain.market import CountWindow
from dispatch.service_layer.ports import Ask, Outcome
from geoindex import Position, RedisGeoIndex, ScriptRunner
from loadtest import hot_regions
from loadtest.redis_procs import free_port
from tests.waiting import eventually

HOT = h3.latlng_to_cell(52.52, 13.40, 5)
HOT_DRIVERS = 400
COLD_DRIVERS = 20


def _slot(cell: str) -> int:
    return key_slot(f"gi:{{r{cell}}}:geo".encode())


async def _cold_cells_on_the_hot_node(client: RedisCluster) -> list[str]:
    """Three neighbours of HOT whose slot the same master owns, so they share its CPU."""
    owner = client.get_node_from_key(f"gi:{{r{HOT}}}:geo").name
    near = sorted(set(h3.grid_disk(HOT, 4)) - {HOT})
    same = [c for c in near if client.get_node_from_key(f"gi:{{r{c}}}:geo").name == owner]
    assert len(same) >= 3, "a ring of 60 cells spread over 3 masters has 3 on each"
    return same[:3]


def _drivers(cell: str, n: int) -> list[tuple[str, float, float]]:
    """n drivers at the centres of distinct res-9 cells inside `cell`."""
    children = sorted(h3.cell_to_children(cell, 9))  # 2,401, in digit order
    children = children[:: len(children) // n][:n]
    return [(f"{cell}-{i}", *h3.cell_to_latlng(c)) for i, c in enumerate(children)]


async def _load(
    index: RedisGeoIndex,
    drivers: list[tuple[str, float, float]],
    hot_centre: tuple[float, float],
    stop: asyncio.Event,
    market: RedisMarketStore | None = None,
) -> None:
    """Every driver sends a fix every 0.5 s, and a k-nearest search runs in the hot region as
    often."""
    ts = int(time.time() * 1000)
    while not stop.is_set():
        ts = max(ts + 1, int(time.time() * 1000))
        await index.upsert([Position(d, lat, lng, ts) for d, lat, lng in drivers])
        await index.nearest(*hot_centre, k=10, radius_m=2_000)
        if market:  # the ride request behind that search, counted as the service does
            cell = h3.latlng_to_cell(*hot_centre, 8)
            ask = Ask(cell, int(HOT, 16), f"rider-{ts}", ts, Outcome.OFFERED, product="economy")
            await market.count(ask, CountWindow(5_000, 60_000))
        await asyncio.sleep(0.5)


async def _all_regions_listed(client: RedisCluster) -> bool:
    """The hot region and its three cold neighbours in the index's regions set."""
    listed = {m.decode() for m in await client.smembers("gi:regions")}
    wanted = {HOT, *await _cold_cells_on_the_hot_node(client)}
    return wanted <= listed


async def _sample_under_load(client: RedisCluster, url: str) -> dict:
    index = RedisGeoIndex(client, ttl_ms=600_000)
    drivers = _drivers(HOT, HOT_DRIVERS)
    for cell in await _cold_cells_on_the_hot_node(client):
        drivers += _drivers(cell, COLD_DRIVERS)
    stop = asyncio.Event()
    market = RedisMarketStore(ScriptRunner(client, MARKET_SCRIPTS))
    load = asyncio.create_task(_load(index, drivers, h3.cell_to_latlng(HOT), stop, market))
    try:
        # Every region written once before the reference is taken (the first round also
        # loads the scripts and opens the connections: on a busy machine it outlasted a
        # fixed 0.2 s, and the sampler found no region).
        await eventually(lambda: _all_regions_listed(client), timeout_s=30)
        return await hot_regions.sample(url, 1.5, cpu_threshold=0.001, min_share=0.25)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await load


async def test_the_hot_region_ranks_first_and_is_proposed(redis_cluster_url: str) -> None:
    client = RedisCluster.from_url(redis_cluster_url)
    await client.initialize()
    try:
        result = await _sample_under_load(client, redis_cluster_url)
        cold = await _cold_cells_on_the_hot_node(client)
    finally:
        await client.aclose()

    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    rows = result["regions"]
    assert [r["cell"] for r in rows][:1] == [HOT]
    assert {r["cell"] for r in rows} == {HOT, *cold}
    hot, colds = rows[0], rows[1:]
    assert hot["slot"] == _slot(HOT) and hot["drivers"] == HOT_DRIVERS
    assert all(r["drivers"] == COLD_DRIVERS and r["node"] == hot["node"] for r in colds)
    # Each round writes every driver once: the hot region takes 20 times a cold one's writes.
    assert hot["writes_per_s"] > 10 * max(r["writes_per_s"] for r in colds) > 0
    # One ride request a round in the hot region, none in the others: counted, not null.
    assert hot["searches_per_s"] > 0 and all(r["searches_per_s"] == 0 for r in colds)
    assert hot["share_of_node"] > 0.8
    node = next(n for n in result["nodes"] if n["node"] == hot["node"])
    assert node["cpu_cores"] > 0.001 and node["busiest_commands"]["evalsha"]["calls_per_s"] > 0
    assert "eval" not in node["busiest_commands"]  # the sampler's own script is left out
    # The node's command CPU is split over its regions, not invented per region.
    assert abs(sum(r["cpu_cores"] for r in rows) - node["cpu_cores"]) < 0.001
    assert [(p["cell"], p["res"] in (6, 7)) for p in result["proposal"]["split"]] == [(HOT, True)]
    assert hot["proposed"] and not any(r["proposed"] for r in colds)
    # Drivers spread over the hot cell: the busiest res-7 child holds a small fraction.
    assert hot["busiest_child_fraction"]["7"] < hot["busiest_child_fraction"]["6"] < 0.5
    assert orjson.loads(orjson.dumps(result)) == result


def test_the_command_line_prints_json_and_a_table(redis_cluster_url: str, capsys) -> None:
    assert hot_regions.main(["--url", redis_cluster_url, "--seconds", "0.5", "--table"]) == 0
    out, err = capsys.readouterr()
    result = orjson.loads(out)
    assert result["regions"] == [] and len(result["nodes"]) == 3
    assert err.splitlines()[0].split()[:3] == ["cell", "slot", "node"]


@pytest.mark.parametrize(
    "args",
    [["--seconds", "0"], ["--min-share", "1.5"], ["--cpu-threshold", "-1"], ["--top", "0"]],
)  # fmt: skip
def test_bad_arguments_are_refused_before_redis_is_touched(args, capsys) -> None:
    # Port 1 refuses connections: reaching it would be a different error.
    assert hot_regions.main(["--url", "redis://127.0.0.1:1", *args]) == 2
    assert capsys.readouterr().err.startswith("hot_regions: need seconds > 0")


def test_an_unreachable_redis_is_a_clear_error(capsys) -> None:
    assert hot_regions.main(["--url", f"redis://127.0.0.1:{free_port()}", "--seconds", "0.5"]) == 2
    assert capsys.readouterr().err.startswith("hot_regions: Error 111 connecting to 127.0.0.1")


async def test_on_a_single_redis_every_region_is_on_the_one_node(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url)
    try:
        index = RedisGeoIndex(client, ttl_ms=600_000)
        stop = asyncio.Event()
        drivers = _drivers(HOT, 30)
        load = asyncio.create_task(_load(index, drivers, h3.cell_to_latlng(HOT), stop))
        try:
            await asyncio.sleep(0.2)
            result = await hot_regions.sample(redis_url, 1.0, cpu_threshold=0.0, min_share=0.5)
        finally:
            stop.set()
            await load
    finally:
        await client.aclose()
    (node,) = result["nodes"]
    (row,) = result["regions"]
    assert (row["cell"], row["node"], row["drivers"]) == (HOT, node["node"], 30)
    assert row["slot"] == _slot(HOT) and row["share_of_node"] == 1.0 and row["writes_per_s"] > 0
    assert row["searches_per_s"] is None  # no market counters on this Redis: not counted
    assert result["proposal"]["split"] == [{"cell": HOT, "res": 7, "still_hot": True}]
