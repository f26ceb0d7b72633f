"""The driver WebSocket under fuzzed frames (hypothesis): text that is not JSON, JSON of
every shape, frames of every type with fields of the wrong types, NaN and Infinity,
binary frames, out-of-order fixes, oversized messages. Each frame gets exactly one answer
(an ack, a pong, a ride or an error frame with a clean message) or, above 4 KiB, the
socket closes with 1009; the server stays up and serves the next socket."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import BERLIN, Client

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ANSWERS = {"ack", "pong", "ride", "error"}
FIELDS = ["lat", "lng", "ts", "seq", "heading", "speed", "accuracy", "ride_id", "fixes", "extra"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
typed_frames = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["location", "locations", "accept", "decline", "ping", "offer", "", "LOCATION"]
        )
    },
    optional={
        f: json_values | st.sampled_from([52.5, 13.4, 0, -1, 2**53, "r_" + "a" * 32])
        for f in FIELDS
    },
).map(lambda d: orjson.dumps(d).decode())
raw_frames = st.sampled_from(
    [
        '{"type": "location", "lat": NaN, "lng": 1, "ts": 1, "seq": 1}',
        '{"type": "location", "lat": Infinity, "lng": 1, "ts": 1, "seq": 1}',
        '{"type": "location", "lat": 1e999, "lng": 1, "ts": 1, "seq": 1}',
        '{"type": "ping"',
        '{"type": "ping"}{"type": "ping"}',
        '{"type": "accept", "ride_id": "r_../../x"}',
        '{"type": "ping", "type": "location"}',
        '{"type": "location", "lat": 1, "lng": 1, "ts": 1, "seq": 123456789012345678901234567}',
        "[" * 4000,
        "\x00",
        "",
    ]
)
frames = st.one_of(
    st.text(max_size=300),
    json_values.map(lambda v: orjson.dumps(v).decode()),
    typed_frames,
    raw_frames,
)


class Socket:
    """One driver socket, reopened whenever the server closed it."""

    def __init__(self, client: Client, driver: str) -> None:
        self.client, self.driver = client, driver
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def get(self) -> aiohttp.ClientWebSocketResponse:
        if self.ws is None or self.ws.closed:
            self.ws = await self.client.session.ws_connect(
                f"{self.client.base}/v1/drivers/{self.driver}/stream",
                headers=self.client.auth(f"driver:{self.driver}"),
            )
        return self.ws

    async def answer(self, frame: str | bytes) -> Any:
        ws = await self.get()
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)
        msg = await ws.receive(timeout=5)
        return msg


def check_answer(msg: aiohttp.WSMessage) -> dict[str, Any]:
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    reply = orjson.loads(msg.data)
    assert reply["type"] in ANSWERS, reply
    if reply["type"] == "error":
        assert (
            {"type", "error", "message"}
            <= set(reply)
            <= {"type", "error", "message", "field", "id"}
        ), reply
        assert "Traceback" not in reply["message"] and "File " not in reply["message"]
        assert reply["error"] != "internal", reply  # no frame may find a bug
    return reply  # type: ignore[no-any-return]


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frame=frames | st.binary(max_size=64))
async def test_every_fuzzed_frame_gets_one_clean_answer(live: Client, frame: str | bytes) -> None:
    sock = SOCKETS.setdefault(id(live), Socket(live, "fz"))
    size = len(frame.encode() if isinstance(frame, str) else frame)
    msg = await sock.answer(frame)
    if size > 4096:
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1009, msg
        return
    check_answer(msg)


SOCKETS: dict[int, Socket] = {}


async def test_out_of_order_fixes_are_acked_stale_and_the_newest_stays(live: Client) -> None:
    sock = Socket(live, "oo")
    now = int(time.time() * 1000)

    def loc(seq: int, ts: int) -> str:
        return orjson.dumps({"type": "location", **BERLIN, "ts": ts, "seq": seq}).decode()

    for seq, ts, status in ((5, now, "accepted"), (3, now + 10, "stale"), (6, now - 10, "stale"),
                            (5, now, "accepted"), (7, now + 20, "accepted")):  # fmt: skip
        reply = check_answer(await sock.answer(loc(seq, ts)))
        assert (reply["type"], reply["seq"], reply["status"]) == ("ack", seq, status)
    view = (await live.call("GET", "/v1/drivers/oo", "driver:oo")).body
    assert (view["seq"], view["ts"]) == (7, now + 20)


async def test_an_oversized_message_closes_with_1009_and_the_server_serves_on(
    live: Client,
) -> None:
    sock = Socket(live, "big")
    msg = await sock.answer('{"type": "ping", "pad": "' + "x" * 5000 + '"}')
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1009
    reply = check_answer(await sock.answer('{"type": "ping"}'))  # a new socket
    assert reply == {"type": "pong"}
    assert (await live.call("GET", "/healthz")).status == 200
