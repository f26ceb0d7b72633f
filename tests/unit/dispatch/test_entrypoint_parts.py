"""Pieces of the entrypoints with no I/O: metrics, the rate limiter, and the strict
validation of bodies, query strings and frames against the contract."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import msgspec
import prometheus_client
import pytest

from dispatch.domain.rides import Ride, RideStatus
from dispatch.entrypoints import contract, schemas
from dispatch.entrypoints.jsonio import MalformedJson
from dispatch.entrypoints.metrics import LATENCY_BUCKETS, Metrics
from dispatch.entrypoints.ratelimit import RateLimiter
from dispatch.entrypoints.views_drivers import accepted
from dispatch.service_layer.drivers import Fix
from dispatch.service_layer.errors import NotFound


# -- metrics -------------------------------------------------------------------------------
def test_metrics_render_the_prometheus_text_format() -> None:
    m = Metrics()
    m.request("POST", "/v1/rides", 201, 0.003)
    m.request("POST", "/v1/rides", 201, 7.0)
    m.locations(3, 1)
    m.refused("nearby")
    m.websockets.inc()
    lines = m.render().decode().splitlines()
    assert "# TYPE dispatch_http_requests_total counter" in lines
    assert 'dispatch_http_requests_total{method="POST",route="/v1/rides",status="201"} 2.0' in lines
    bucket = "dispatch_http_request_duration_seconds_bucket"
    assert f'{bucket}{{le="0.0025",method="POST",route="/v1/rides"}} 0.0' in lines
    assert f'{bucket}{{le="0.005",method="POST",route="/v1/rides"}} 1.0' in lines
    assert f'{bucket}{{le="+Inf",method="POST",route="/v1/rides"}} 2.0' in lines
    assert 'dispatch_location_updates_total{result="accepted"} 3.0' in lines
    assert 'dispatch_location_updates_total{result="stale"} 1.0' in lines
    assert 'dispatch_rate_limited_total{limit="nearby"} 1.0' in lines
    assert "dispatch_websockets_open 1.0" in lines
    assert "dispatch_event_streams_open 0.0" in lines
    assert not [line for line in lines if "_created" in line]


def test_the_tallied_series_render_as_prometheus_clients_own_would() -> None:
    """Requests and fixes are plain tallies made into families at a scrape: the text is
    what prometheus_client's Counter and Histogram print for the same updates."""
    observed = [
        ("POST", "/v1/drivers/{driver_id}/location", 202, 0.0004),
        ("POST", "/v1/drivers/{driver_id}/location", 202, 0.001),  # on a bound: its bucket
        ("GET", "/healthz", 200, 0.0),
        ("POST", "/v1/drivers/{driver_id}/location", 409, 0.03),
        ("POST", "/v1/drivers/{driver_id}/location", 202, 9.5),  # past the last: +Inf
        ("GET", "unmatched", 404, 0.002),
    ]
    m = Metrics()
    reference = prometheus_client.CollectorRegistry()
    requests = prometheus_client.Counter(
        "dispatch_http_requests_total",
        "HTTP requests by route and status",
        ["method", "route", "status"],
        registry=reference,
    )
    latency = prometheus_client.Histogram(
        "dispatch_http_request_duration_seconds",
        "HTTP request latency by route",
        ["method", "route"],
        buckets=LATENCY_BUCKETS,
        registry=reference,
    )
    fixes = prometheus_client.Counter(
        "dispatch_location_updates_total",
        "Position fixes by result (accepted, stale)",
        ["result"],
        registry=reference,
    )
    fixes.labels("accepted")
    fixes.labels("stale")
    for method, route, status, seconds in observed:
        m.request(method, route, status, seconds)
        requests.labels(method, route, str(status)).inc()
        latency.labels(method, route).observe(seconds)
    for taken, stale in ((3, 0), (0, 2), (1, 1)):
        m.locations(taken, stale)
        fixes.labels("accepted").inc(taken)
        fixes.labels("stale").inc(stale)
    expected = prometheus_client.generate_latest(reference).decode()
    assert m.render().decode().startswith(expected)


def test_each_app_counts_in_its_own_registry() -> None:
    a, b = Metrics(), Metrics()  # two apps in one process: no "duplicated timeseries"
    a.backend_error()
    assert b"dispatch_backend_errors_total 1.0" in a.render()
    assert b"dispatch_backend_errors_total 0.0" in b.render()


def test_metrics_observe_rides_as_the_use_cases_observer() -> None:
    m = Metrics()
    for status in (RideStatus.OFFERED, RideStatus.CANCELLED):
        m.ride_changed(cast(Ride, SimpleNamespace(status=status)))  # only its status is read
    text = m.render().decode()
    assert 'dispatch_ride_changes_total{status="offered"} 1.0' in text
    assert 'dispatch_rides_finished_total{outcome="cancelled"} 1.0' in text


# -- rate limiter --------------------------------------------------------------------------
def test_the_rate_limiter_allows_a_burst_then_the_rate() -> None:
    now = [100.0]
    limiter = RateLimiter(rate_per_s=2, burst=3, clock=lambda: now[0])
    assert [limiter.allow("d1") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("d2")
    now[0] += 0.5
    assert limiter.allow("d1") and not limiter.allow("d1")
    now[0] += 100
    assert [limiter.allow("d1") for _ in range(4)] == [True, True, True, False]


def test_retry_after_is_the_whole_seconds_until_a_token() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_s=0.25, burst=1, clock=lambda: now[0])
    assert limiter.retry_after_s("d1") == 0  # a key never seen has its burst
    assert limiter.allow("d1") and not limiter.allow("d1")
    assert limiter.retry_after_s("d1") == 4
    now[0] += 3.5
    assert limiter.retry_after_s("d1") == 1
    now[0] += 0.5
    assert limiter.retry_after_s("d1") == 0 and limiter.allow("d1")


# -- bodies --------------------------------------------------------------------------------
def refused(decoder: msgspec.json.Decoder, raw: bytes) -> schemas.InvalidBody:  # type: ignore[type-arg]
    with pytest.raises(schemas.InvalidBody) as caught:
        schemas.parse(decoder, raw)
    return caught.value


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        (b'{"lat": 1, "lng": 2, "ts": 3, "seq": 4, "status": "x"}', "unknown_field", "/status"),
        (b'{"lat": 1, "lng": 2, "ts": 3, "seq": true}', "invalid_body", "/seq"),
        (b'{"lat": null, "lng": 2, "ts": 3, "seq": 4}', "invalid_body", "/lat"),
        (b'{"lat": 1, "lng": 2, "seq": 4}', "invalid_body", "/ts"),
        (b'{"lat": 1, "lng": 2, "ts": 9007199254740992, "seq": 4}', "invalid_body", "/ts"),
        (b'{"lat": 1, "lng": 2, "ts": 3, "seq": 4, "speed": 151}', "invalid_body", "/speed"),
        (b'{"lat": 1, "lng": 2, "ts": 3, "seq": 4, "a/b~c": 1}', "unknown_field", "/a~1b~0c"),
        (b"[1]", "invalid_body", None),
    ],
)
def test_a_bad_fix_names_its_field_as_a_json_pointer(
    raw: bytes, code: str, field: str | None
) -> None:
    error = refused(schemas.LOCATION, raw)
    assert (error.code, error.field) == (code, field)
    if field:
        assert str(error).endswith(f" at {field}")


def test_a_good_fix_decodes_and_its_optional_fields_are_checked_only() -> None:
    ok = schemas.parse(schemas.LOCATION, b'{"lat": 1, "lng": 2, "ts": 3, "seq": 4, "speed": 5.5}')
    assert schemas.fix_of(ok) == Fix(1.0, 2.0, 3, 4)


@pytest.mark.parametrize(
    "raw", [b'{"lat": NaN}', b'{"lat": Infinity}', b"", b"{", b'{"lat": 1e999, "lng": 1}']
)
def test_what_is_not_json_of_doubles_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedJson):
        schemas.parse(schemas.LOCATION, raw)


def test_nested_fields_are_named_by_their_path() -> None:
    error = refused(schemas.RIDE_REQUEST, b'{"pickup": {"lat": 1, "lng": 200}}')
    assert error.field == "/pickup/lng"
    error = refused(schemas.RIDE_REQUEST, b'{"pickup": {"lat": 1, "lng": 2, "alt": 3}}')
    assert (error.code, error.field) == ("unknown_field", "/pickup/alt")
    body = schemas.parse(schemas.RIDE_REQUEST, b'{"pickup": {"lat": 1, "lng": 2}, "dropoff": null}')
    assert schemas.ride_points(body)[1] is None


def test_a_batch_answers_each_invalid_item_and_keeps_the_others() -> None:
    ok = b'{"driver_id": "a", "lat": 1, "lng": 2, "ts": 3, "seq": 4}'
    items = schemas.batch(
        b'{"updates": [' + ok + b', {"driver_id": "b", "lat": 91, "lng": 2, "ts": 3, "seq": 4},'
        b' "nonsense", {"driver_id": "' + b"x" * 65 + b'"}]}'
    )
    assert isinstance(items[0], contract.BatchItem) and items[0].driver_id == "a"
    assert [(i.driver_id, i.status) for i in items[1:]] == [  # type: ignore[union-attr]
        ("b", "invalid"),
        (None, "invalid"),
        (None, "invalid"),  # an id too long to show back
    ]
    assert "/lat" in items[1].error  # type: ignore[union-attr,operator]
    assert len(schemas.batch(b'{"updates": [' + b",".join([ok] * 3) + b"]}")) == 3


@pytest.mark.parametrize(
    ("raw", "code"),
    [(b'{"updates": [], "x": 1}', "unknown_field"), (b'{"updates": 3}', "invalid_body")],
)
def test_a_batch_that_is_not_one_is_refused_whole(raw: bytes, code: str) -> None:
    with pytest.raises(schemas.InvalidBody) as caught:
        schemas.batch(raw)
    assert caught.value.code == code


# -- query strings -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw", ["nan", "NaN", "inf", "-inf", "1e999", "0x10", "1_0", " 1", "", "1.", ".5", "+1"]
)
def test_query_numbers_are_plain_finite_decimals(raw: str) -> None:
    with pytest.raises(schemas.InvalidBody) as caught:
        schemas.query({"lat": raw, "lng": "1"}, contract.NearbyQuery)
    assert caught.value.field == "/lat"


def test_query_numbers_within_range_pass() -> None:
    q = schemas.query({"lat": "-12.5e0", "lng": "3"}, contract.NearbyQuery)
    assert (q.lat, q.lng, q.k, q.radius_m) == (-12.5, 3.0, 10, 2000.0)
    for bad, field in (
        ({"lat": "91", "lng": "1"}, "/lat"),
        ({"lat": "1", "lng": "1", "k": "2.5"}, "/k"),
    ):
        with pytest.raises(schemas.InvalidBody) as caught:
            schemas.query(bad, contract.NearbyQuery)
        assert caught.value.field == field
    with pytest.raises(schemas.InvalidBody) as caught:
        schemas.query({"lat": "1", "lng": "1", "driver_id": "d1"}, contract.NearbyQuery)
    assert caught.value.code == "unknown_field"


# -- WebSocket frames ----------------------------------------------------------------------
def test_client_frames_decode_by_type_with_an_optional_id() -> None:
    frame = schemas.parse(
        schemas.CLIENT_FRAME,
        b'{"type": "location", "id": "f1", "lat": 1, "lng": 2, "ts": 3, "seq": 4}',
    )
    assert isinstance(frame, contract.LocationFrame) and frame.id == "f1"
    accept = schemas.parse(schemas.CLIENT_FRAME, b'{"type": "accept", "ride_id": "r_1"}')
    assert isinstance(accept, contract.AcceptFrame) and accept.id is msgspec.UNSET
    assert (
        refused(schemas.CLIENT_FRAME, b'{"type": "ping", "id": "' + b"x" * 65 + b'"}').field
        == "/id"
    )
    assert refused(schemas.CLIENT_FRAME, b'{"type": "nope"}').field == "/type"
    assert refused(schemas.CLIENT_FRAME, b'{"type": "ping", "x": 1}').code == "unknown_field"


def test_an_invalid_frame_still_gives_its_id_for_the_error_reply() -> None:
    assert schemas.frame_id(b'{"type": "nope", "id": "f9"}') == "f9"
    for raw in (b'{"type": "ping", "id": 7}', b"[1]", b"not json", b'{"id": "' + b"x" * 65 + b'"}'):
        assert schemas.frame_id(raw) is msgspec.UNSET


def test_replies_to_a_frame_echo_its_id_and_a_result_is_not_a_ride_frame() -> None:
    ack = contract.AckFrame(id="f1", seq=4, status="stale", stored_seq=7, stored_ts=9)
    assert msgspec.json.decode(msgspec.json.encode(ack)) == {
        "type": "ack", "id": "f1", "seq": 4, "status": "stale", "stored_seq": 7, "stored_ts": 9
    }  # fmt: skip
    pong = msgspec.json.decode(msgspec.json.encode(contract.PongFrame()))
    assert pong == {"type": "pong"}


# -- path parts ----------------------------------------------------------------------------
def test_ride_ids_that_cannot_exist_are_not_found() -> None:
    assert schemas.ride_id("r_" + "a" * 32)
    for bad in ("r_" + "A" * 32, "r_123", "{r}", ""):
        with pytest.raises(NotFound):
            schemas.ride_id(bad)


@pytest.mark.parametrize("seq", [0, 7, contract.MAX_INT])
def test_the_accepted_answer_is_the_contracts_encoding(seq: int) -> None:
    assert accepted(seq) == msgspec.json.encode(contract.Accepted(status="accepted", seq=seq))
