"""Pieces of the entrypoints with no I/O: metrics text, the rate limiter, settings,
and the strict validation of bodies and query strings."""

from __future__ import annotations

import pytest

from dispatch.entrypoints import schemas
from dispatch.entrypoints.metrics import Metrics
from dispatch.entrypoints.ratelimit import RateLimiter
from dispatch.service_layer.errors import NotFound
from dispatch.settings import Settings, from_env


def test_metrics_render_the_prometheus_text_format() -> None:
    m = Metrics()
    m.requests.inc(route="/v1/rides", method="POST", status="201")
    m.requests.inc(route="/v1/rides", method="POST", status="201")
    m.latency.observe(0.003, route="/v1/rides", method="POST")
    m.latency.observe(7.0, route="/v1/rides", method="POST")
    m.locations(3, 1)
    m.websockets.inc()
    text = m.render()
    lines = text.splitlines()
    assert text.endswith("\n")
    assert "# TYPE dispatch_http_requests_total counter" in lines
    assert 'dispatch_http_requests_total{method="POST",route="/v1/rides",status="201"} 2' in lines
    assert (
        'dispatch_http_request_duration_seconds_bucket{method="POST",route="/v1/rides",'
        'le="0.0025"} 0'
    ) in lines
    assert (
        'dispatch_http_request_duration_seconds_bucket{method="POST",route="/v1/rides",'
        'le="0.005"} 1'
    ) in lines
    assert (
        'dispatch_http_request_duration_seconds_bucket{method="POST",route="/v1/rides",le="+Inf"} 2'
    ) in lines
    assert (
        'dispatch_http_request_duration_seconds_count{method="POST",route="/v1/rides"} 2' in lines
    )
    assert 'dispatch_location_updates_total{result="accepted"} 3' in lines
    assert "dispatch_websockets_open 1" in lines
    for line in lines:
        assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2


def test_label_values_are_escaped() -> None:
    m = Metrics()
    m.requests.inc(route='a"b\\c\nd', method="GET", status="200")
    assert 'route="a\\"b\\\\c\\nd"' in m.render()


def test_the_rate_limiter_allows_a_burst_then_the_rate() -> None:
    now = [100.0]
    limiter = RateLimiter(rate_per_s=2, burst=3, clock=lambda: now[0])
    assert [limiter.allow("d1") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("d2")
    now[0] += 0.5
    assert limiter.allow("d1") and not limiter.allow("d1")
    now[0] += 100
    assert [limiter.allow("d1") for _ in range(4)] == [True, True, True, False]


def test_settings_come_from_the_environment_then_flags() -> None:
    env = {
        "DISPATCH_PORT": "9000",
        "DISPATCH_OFFER_TIMEOUT_S": "2.5",
        "DISPATCH_REDIS_URL": "redis://h:1/0",
        "DISPATCH_INSTANCE_ID": "x",
    }
    s = from_env(env, port=9001)
    assert (s.port, s.offer_timeout_s, s.redis_url, s.instance, s.backend) == (
        9001,
        2.5,
        "redis://h:1/0",
        "x",
        "redis",
    )
    assert from_env({}).backend == "embedded"
    assert Settings(port=81).instance.endswith("-81")
    with pytest.raises(ValueError):
        from_env({"DISPATCH_REDIS_URL": "redis://a", "DISPATCH_REDIS_CLUSTER_URL": "redis://b"})


@pytest.mark.parametrize(
    "raw", ["nan", "NaN", "inf", "-inf", "1e999", "0x10", "1_0", " 1", "", "1.", ".5", "+1"]
)
def test_query_numbers_are_plain_finite_decimals(raw: str) -> None:
    with pytest.raises(schemas.InvalidBody):
        schemas.query_number({"lat": raw}, "lat", None, -90, 90)


def test_query_numbers_within_range_pass() -> None:
    assert schemas.query_number({"lat": "-12.5e0"}, "lat", None, -90, 90) == -12.5
    assert schemas.query_number({}, "k", 10, 1, 50) == 10
    with pytest.raises(schemas.InvalidBody):
        schemas.query_number({"lat": "91"}, "lat", None, -90, 90)


def test_fixes_refuse_unknown_fields_and_bad_types() -> None:
    ok = {"lat": 1, "lng": 2, "ts": 3, "seq": 4, "speed": 5.5}
    assert schemas.fix(ok).seq == 4
    for bad in (
        {**ok, "status": "x"},
        {**ok, "seq": True},
        {**ok, "lat": None},
        {k: v for k, v in ok.items() if k != "ts"},
        {**ok, "ts": 2**53},
    ):
        with pytest.raises(schemas.InvalidBody):
            schemas.fix(bad)


def test_ride_ids_that_cannot_exist_are_not_found() -> None:
    assert schemas.ride_id("r_" + "a" * 32)
    for bad in ("r_" + "A" * 32, "r_123", "{r}", ""):
        with pytest.raises(NotFound):
            schemas.ride_id(bad)
