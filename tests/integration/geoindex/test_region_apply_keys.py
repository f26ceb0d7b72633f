"""region_apply.lua declares every product set it writes: one it would touch but was not
given writes nothing and asks for it (Redis Cluster refuses an undeclared key mid-script
while its slot migrates, after the writes before it), and the index sends it again."""

from __future__ import annotations

from typing import Any

import pytest

from geoindex import Position, RedisGeoIndex
from geoindex.cells import position_score
from geoindex.redis_index import REGION_APPLY, _change
from geoindex.split import Layout

pytestmark = pytest.mark.redis

LAT, LNG, T = 52.52, 13.405, 1_700_000_000_000


def _index(client: Any) -> RedisGeoIndex:
    return RedisGeoIndex(client, ttl_ms=60_000, clock=lambda: T)


async def _dump(client: Any, keys: list[str]) -> list[Any]:
    return [await client.dump(k) for k in keys]


async def test_a_call_missing_a_product_set_it_would_touch_writes_nothing(client: Any) -> None:
    index = _index(client)
    await index.upsert([Position("d1", LAT, LNG, T)])
    assert await index.set_products("d1", ["van"])
    region = Layout(5).write_region(position_score(LAT, LNG))
    keys = index._region_keys(region)
    every = [*keys, f"{keys[0]}:van", f"{keys[0]}:car"]
    before = await _dump(client, every)
    assert before[3] is not None  # d1 is in the van set
    # d1 moves and now drives a car: its stored entry (van) must leave the van set.
    text = f"a d1 {2**52} {T + 1} {position_score(LAT, LNG + 1e-3)} {LAT} {LNG + 1e-3} car"
    change, other = list(_change(text)), list(_change(text.replace("d1", "d2")))
    runner = index._scripts
    one = ["0", keys[0], 1, *change]  # region_apply.lua's arguments for one region
    (reply,) = await runner.run([(REGION_APPLY, [*keys, f"{keys[0]}:car"], one)])
    assert [x.decode() for x in reply] == ["need", "van"]
    (reply,) = await runner.run([(REGION_APPLY, keys, ["0", keys[0], 2, *change, *other])])
    assert sorted(x.decode() for x in reply) == ["car", "need", "van"]
    assert await _dump(client, every) == before
    # Declared, it applies.
    (reply,) = await runner.run([(REGION_APPLY, every, one)])
    assert reply == 1
    assert await client.zcard(f"{keys[0]}:van") == 0
    assert await client.zcard(f"{keys[0]}:car") == 1


async def test_an_index_that_never_saw_a_product_still_moves_its_drivers_out_of_it(
    client: Any,
) -> None:
    await _index(client).upsert([Position("d1", LAT, LNG, T)])
    assert await _index(client).set_products("d1", ["van"])
    # Another instance, which has never written a van, changes d1's products.
    other = _index(client)
    assert await other.set_products("d1", ["car"])
    assert [n.driver_id for n in await other.nearest(LAT, LNG, 5, 1_000, "car")] == ["d1"]
    assert await other.nearest(LAT, LNG, 5, 1_000, "van") == []
    # ... and remembers the van set for the next call.
    assert "van" in other._products


async def test_a_stored_entry_written_with_a_dash_for_no_products_is_moved_as_one(
    client: Any,
) -> None:
    """Entries written before no products were packed as nothing held "-": such a driver
    moves in geo and touches no product set."""
    index = _index(client)
    await index.upsert([Position("d1", LAT, LNG, T)])
    keys = index._region_keys(Layout(5).write_region(position_score(LAT, LNG)))
    value = await client.hget(keys[1], "d1")
    assert len(value) == 33  # the head and the flag: no products
    await client.hset(keys[1], "d1", value[:32] + b"-" + value[32:])  # as written before
    await index.upsert([Position("d1", LAT, LNG + 1e-3, T + 1)])
    (member,) = await client.zrange(keys[0], 0, -1)  # its old member gone, the new one in
    assert member.endswith(b"d1")
    assert [n.ts_ms for n in await index.nearest(LAT, LNG, 1, 500)] == [T + 1]
    assert len(await client.hget(keys[1], "d1")) == 33
