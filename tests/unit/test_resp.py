"""geoindex/_resp.c: the packing is hiredis's to the byte, a fix's text and cells Python's."""

from __future__ import annotations

import dataclasses
import inspect
import math
import pickle
import random
import struct

import hiredis
import pytest
from h3.api import basic_int as h3

from geoindex import Position, RedisGeoIndex, UpsertResult
from geoindex._resp import fix_texts, format_g17, pack_command, region_changes
from geoindex.cells import FINE_RES
from geoindex.redis_index import _gone, _parent_bits, fix_texts_in_python

TAIL = " 86400000 1 -"


def _argument(rng: random.Random) -> object:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randrange(-(2**63), 2**63)
    if kind == 1:
        return rng.random() * 10 ** rng.randrange(-5, 20)
    if kind == 2:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
    if kind == 3:
        return "".join(chr(rng.randrange(1, 0xD000)) for _ in range(rng.randrange(20)))
    return rng.randrange(-1000, 1000)


def test_a_command_is_packed_as_hiredis_packs_it() -> None:
    rng = random.Random(3)
    commands = [
        ("EVALSHA", "a" * 40, 0, "gi:d:{x}", "1 2 3"),
        ("SET", "é", -5, 2**62, -(2**63), 1.5, 1e300, float("nan"), b"\x00\xff\r\n", ""),
        tuple(range(300)),  # more arguments than its stack holds
        (),
    ]
    commands += [tuple(_argument(rng) for _ in range(rng.randrange(1, 90))) for _ in range(3000)]
    for command in commands:
        assert pack_command(command) == hiredis.pack_command(command)


@pytest.mark.parametrize("argument", [True, None, 2**63, [1], bytearray(b"x"), memoryview(b"y")])
def test_what_it_does_not_pack_is_left_to_hiredis(argument: object) -> None:
    assert pack_command(("SET", argument)) is NotImplemented


def test_text_that_is_not_utf8_raises_as_hiredis_does() -> None:
    with pytest.raises(UnicodeEncodeError):
        pack_command(("SET", "x\ud800"))


def _positions() -> list[Position]:
    rng = random.Random(17)
    points = [(rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(20_000)]
    points += [(rng.uniform(52.3, 52.7), rng.uniform(13.1, 13.7)) for _ in range(5_000)]
    points += [(90.0, 180.0), (-90.0, -180.0), (0.0, 0.0), (-0.0, 0.0), (1e-300, -1e-300)]
    points += [(89.99999, 0.0), (-89.99999, 0.0), (10.0, 179.99999), (10.0, -179.99999)]
    for pentagon in h3.get_pentagons(0):
        points.append(h3.cell_to_latlng(h3.cell_to_center_child(pentagon, FINE_RES)))
    return [
        Position(f"d{i}", lat, lng, rng.randrange(2**53), None if i % 3 else rng.randrange(2**53))
        for i, (lat, lng) in enumerate(points)
    ]


@pytest.mark.parametrize("region_res", [5, 6, 7])
def test_fix_texts_are_what_python_makes(region_res: int) -> None:
    positions = _positions()
    head, low = _parent_bits(region_res)
    got = fix_texts(positions, "gi:d:{", TAIL, head, low, {}, None)
    expected = fix_texts_in_python(positions, "gi:d:{", TAIL, head, low, {}, None)
    assert got[0] == expected[0]
    assert got[1] == expected[1]
    for row, want in zip(got[2], expected[2], strict=True):
        assert row[0] is want[0]
        assert row[1:] == want[1:]
        assert [type(x) for x in row] == [type(x) for x in want]
    for text, (_, _, lat, lng, _) in zip(got[1], got[2], strict=True):
        lat_text, lng_text, *_ = text.split(" ")
        assert (float(lat_text), float(lng_text)) == (lat, lng)  # the same doubles back


def test_a_split_parents_cells_take_the_layouts_region() -> None:
    positions = _positions()[:3000]
    head, low = _parent_bits(6)
    plain = fix_texts(positions, "k{", "", head, low, {}, None)
    parents = dict.fromkeys({row[4] for row in plain[2][::3]})
    asked: list[int] = []

    def write_region(score: int) -> int:
        asked.append(score)
        return score ^ 12345

    got = fix_texts(positions, "k{", "", head, low, parents, write_region)
    expected = fix_texts_in_python(positions, "k{", "", head, low, parents, write_region)
    assert got == expected
    assert asked  # the layout was asked for the split parents' cells


def _doubles() -> list[float]:
    rng = random.Random(23)
    values = [rng.uniform(-180, 180) for _ in range(100_000)]
    values += [rng.uniform(-1, 1) * 10 ** rng.uniform(-3.5, 16) for _ in range(100_000)]
    bits = [rng.getrandbits(64) for _ in range(50_000)]
    values += [struct.unpack("<d", struct.pack("<Q", b))[0] for b in bits]
    # exact ties at the 17th digit (odd multiples of powers of two): half to even
    values += [rng.randrange(1, 2**53) / 2**k for k in range(1, 60) for _ in range(300)]
    values += [655361 / 65536, 1e-3, math.nextafter(1e-3, 0), 2.0**52, math.nextafter(2.0**52, 0)]
    for j in range(-4, 17):  # around every power of ten in range
        x = y = 10.0**j
        for _ in range(20):
            values += [x, -x, y]
            x, y = math.nextafter(x, math.inf), math.nextafter(y, 0)
    return values


def test_the_fast_17_digits_are_pythons() -> None:
    fast = 0
    for v in _doubles():
        text = format_g17(v)
        if text is not None:
            fast += 1
            assert text == "%.17g" % v, repr(v)  # noqa: UP031 (the format RedisGeoIndex used)
    assert fast > 200_000  # the range it covers: every latitude and longitude from 1e-3


def test_a_position_is_made_as_its_dataclass_makes_it() -> None:
    p = Position("d1", 52.5, 13.4, 7)
    assert (p.driver_id, p.lat, p.lng, p.ts_ms, p.seq) == ("d1", 52.5, 13.4, 7, None)
    assert Position(driver_id="d1", lat=52.5, lng=13.4, ts_ms=7, seq=None) == p
    assert Position("d1", 52.5, lng=13.4, ts_ms=7, seq=3).seq == 3
    assert hash(Position("d1", 52.5, 13.4, 7)) == hash(p)
    assert dataclasses.replace(p, seq=9) == Position("d1", 52.5, 13.4, 7, 9)
    assert dataclasses.asdict(p)["lng"] == 13.4
    assert pickle.loads(pickle.dumps(p)) == p
    assert repr(p) == "Position(driver_id='d1', lat=52.5, lng=13.4, ts_ms=7, seq=None)"
    assert str(inspect.signature(Position)) == (
        "(driver_id: 'str', lat: 'float', lng: 'float', ts_ms: 'int', seq: 'int | None' = None)"
        " -> None"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.lat = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("d1", 52.5, 13.4), {}),
        (("d1", 52.5, 13.4, 7, 1, 2), {}),
        (("d1", 52.5, 13.4, 7), {"speed": 1}),
        (("d1", 52.5, 13.4, 7), {"driver_id": "d2"}),
        ((), {"lat": 52.5, "lng": 13.4, "ts_ms": 7}),
    ],
)
def test_a_position_refuses_what_its_dataclass_refuses(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    with pytest.raises(TypeError):
        Position(*args, **kwargs)  # type: ignore[arg-type]


def _replies(prepared: list[tuple[Position, int, float, float, int]]) -> list[object]:
    """driver_upsert.lua's kinds of reply: stale, the region kept, left or new, available
    or busy, with and without products; some as str (a client decoding its replies)."""
    rng = random.Random(29)
    replies: list[object] = []
    for i, (_, _, _, _, region) in enumerate(prepared):
        kind = i % 7
        ver = str(rng.randrange(2**50, 2**53) if i % 11 else rng.randrange(2**53, 10**19))
        prev = {0: "", 1: f"{region:x}", 2: f"{region ^ 0x10000:x}"}[i % 3]
        state = ["1 -", "0 -", "1 car,xl", "0 car", "1 car"][i % 5]
        reply = "" if kind == 6 else f"{ver} {prev} {state}"
        replies.append(reply if i % 4 == 0 else reply.encode())
    return replies


def test_region_changes_are_what_python_makes() -> None:
    positions = _positions()[:5000]
    head, low = _parent_bits(6)
    _, _, prepared = fix_texts(positions, "gi:d:{", TAIL, head, low, {}, None)
    replies = _replies(prepared)
    in_c, in_python = RedisGeoIndex(object()), RedisGeoIndex(object())
    named: set[bytes] = set()
    results, ops = region_changes(
        prepared, replies, in_c._states, in_c._state, named,
        UpsertResult.ACCEPTED, UpsertResult.STALE, _gone,
    )  # fmt: skip
    want_results, want_ops, want_named = in_python.region_changes_in_python(prepared, replies)
    assert results == want_results
    assert UpsertResult.STALE in results and UpsertResult.ACCEPTED in results
    assert ops == want_ops
    assert list(ops) == list(want_ops)  # regions in the order the fixes met them
    assert named == want_named
    assert in_c._states == in_python._states
    assert in_c._state_products == in_python._state_products
    assert sum(c[1][-1:] == b"t" for cs in ops.values() for c in cs) > 100  # drivers that left


def test_a_reply_it_cannot_read_raises() -> None:
    positions = _positions()[:1]
    head, low = _parent_bits(6)
    _, _, prepared = fix_texts(positions, "gi:d:{", TAIL, head, low, {}, None)
    index = RedisGeoIndex(object())
    for reply in (b"12x  1 -", b"12", b"-5 a 1 -"):
        with pytest.raises(ValueError):
            region_changes(
                prepared, [reply], index._states, index._state, set(),
                UpsertResult.ACCEPTED, UpsertResult.STALE, _gone,
            )  # fmt: skip
