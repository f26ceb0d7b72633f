"""`dispatch split-region`: changes the split list every instance of the Redis reads,
moves the parent's drivers, and refuses bad input before touching Redis."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
import redis.asyncio as aredis
from h3.api import basic_int as h3

from dispatch.entrypoints.cli import main
from geoindex import Position, RedisGeoIndex

pytestmark = pytest.mark.redis

PARENT = h3.latlng_to_cell(52.5, 13.4, 5)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["split-region", *argv])
    out, err = capsys.readouterr()
    return code, out, err


async def test_a_split_by_command_reaches_a_running_index_and_its_drivers(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    client = aredis.Redis.from_url(redis_url)
    index = RedisGeoIndex(client, split_refresh_s=0.0)
    at = h3.cell_to_latlng(h3.cell_to_center_child(PARENT, 9))
    await index.upsert([Position("d1", *at, time.time_ns() // 1_000_000)])
    loop = asyncio.get_running_loop()
    code, out, _ = await loop.run_in_executor(
        None, run, capsys, h3.int_to_str(PARENT), "7", "--redis-url", redis_url, "--settle-s", "0"
    )
    assert code == 0
    shown = orjson.loads(out)
    assert shown["parents"][h3.int_to_str(PARENT)]["res"] == 7
    fine = h3.latlng_to_cell(*at, 7)
    assert await client.hexists(f"gi:{{r{fine:x}}}:meta", "d1")  # re-homed by the migration
    assert (await index.region_split()).parents[PARENT].res == 7
    await index.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["zz", "6"],
        [h3.int_to_str(PARENT), "9"],
        [h3.int_to_str(h3.cell_to_parent(PARENT, 4)), "6"],
        [h3.int_to_str(PARENT)],
        [h3.int_to_str(PARENT), "6", "--settle-s", "-1"],
    ],
)
async def test_bad_input_is_refused_and_the_list_stays_empty(
    redis_url: str, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    loop = asyncio.get_running_loop()
    code, out, err = await loop.run_in_executor(None, run, capsys, *argv, "--redis-url", redis_url)
    assert code == 2 and out == "" and "split-region" in err
    client = aredis.Redis.from_url(redis_url)
    assert await client.exists("gi:split") == 0
    await client.aclose()
