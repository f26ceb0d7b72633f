"""The nginx template renders completely and carries the routing rules the stack relies on."""

from __future__ import annotations

import re
from dataclasses import fields

import orjson
import pytest

from loadtest.nginx_conf import TEMPLATE, GatewayLimits, NginxSettings, placeholders, render


def _settings(**kw: object) -> NginxSettings:
    base: dict[str, object] = {
        "upstreams": ("127.0.0.1:9001", "127.0.0.1:9002"),
        "listen": "127.0.0.1:8000",
        "run_dir": "/tmp/run-x",
    }
    base.update(kw)
    return NginxSettings(**base)  # type: ignore[arg-type]


def test_render_fills_every_placeholder() -> None:
    out = render(_settings())
    assert "{{" not in out and "}}" not in out


def test_every_upstream_gets_passive_health_checks() -> None:
    out = render(_settings(max_fails=4, fail_timeout_s=7))
    servers = re.findall(r"server (\S+) max_fails=4 fail_timeout=7s;", out)
    assert servers == ["127.0.0.1:9001", "127.0.0.1:9002"]


def test_only_keyed_posts_may_be_resent_after_reaching_an_instance() -> None:
    out = render(_settings())
    lines = [ln.strip() for ln in out.splitlines()]
    next_upstream = [ln for ln in lines if ln.startswith("proxy_next_upstream ")]
    # http_503: an instance that cannot reach Redis; its 503 is re-sent like an error.
    assert next_upstream == [
        "proxy_next_upstream error timeout http_503;",
        "proxy_next_upstream error timeout http_503 non_idempotent;",
    ]
    # The non_idempotent variant lives only in the internal location that keyed POSTs reach.
    keyed = out[out.index("location = /__keyed_post") :]
    keyed = keyed[: keyed.index("}")]
    assert "internal;" in keyed and "non_idempotent" in keyed
    assert '"~^POST:.+" 1;' in out


def test_all_writable_paths_live_in_the_run_folder() -> None:
    out = render(_settings(run_dir="/srv/r"))
    for directive in ("pid", "client_body_temp_path", "proxy_temp_path", "scgi_temp_path"):
        m = re.search(rf"^\s*{directive} (\S+);", out, re.M)
        assert m and m.group(1).startswith("/srv/r/"), directive


def test_access_log_off_or_with_upstream_format() -> None:
    assert "access_log off;" in render(_settings(access_log="off"))
    assert "access_log /x/a.log upstream" in render(_settings(access_log="/x/a.log"))


def test_no_upstreams_is_an_error() -> None:
    with pytest.raises(ValueError):
        render(_settings(upstreams=()))


def test_a_template_placeholder_without_a_value_is_an_error() -> None:
    with pytest.raises(KeyError):
        render(_settings(), template="listen {{listen}}; {{unknown}}")


def test_template_placeholders_are_the_known_ones() -> None:
    assert placeholders(TEMPLATE.read_text()) == {
        "servers", "listen", "run_dir", "access_log", "error_log",
        "worker_processes", "keepalive", "client_max_body_size", "limit_exempt", "tls",
        *(f.name for f in fields(GatewayLimits)),
    }  # fmt: skip


def test_the_request_id_is_the_clients_valid_one_or_nginxs_and_is_logged() -> None:
    out = render(_settings())
    # the same rule as the service's (dispatch.entrypoints.request_ids.VALID)
    assert '"~^[A-Za-z0-9._-]{1,64}$" $http_x_request_id;' in out
    assert "default                   $request_id;" in out
    assert "proxy_set_header X-Request-Id $req_id;" in out
    assert "rid=$req_id" in out


def test_tls_is_a_second_listener_with_http2_when_asked() -> None:
    plain = render(_settings())
    assert " ssl " not in plain and "ssl_certificate" not in plain  # (the log's tls= stays)
    out = render(_settings(tls_listen="127.0.0.1:8443", tls_cert="/c.pem", tls_key="/k.pem"))
    assert "listen 127.0.0.1:8443 ssl http2;" in out and "listen 127.0.0.1:8000;" in out
    assert "ssl_certificate /c.pem;" in out and "ssl_certificate_key /k.pem;" in out
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in out
    with pytest.raises(ValueError):
        render(_settings(tls_listen="127.0.0.1:8443"))


def test_per_address_limits_one_zone_per_class_and_a_connection_cap() -> None:
    limits = GatewayLimits(rate_rides="3r/s", burst_rides=7, conn_per_addr=9)
    out = render(_settings(limits=limits))
    assert "limit_req_zone $limit_rides zone=rides:10m rate=3r/s;" in out
    assert "limit_req zone=rides burst=7 nodelay;" in out
    for zone in ("locations", "rides", "reads"):
        assert f"limit_req_zone $limit_{zone} zone={zone}:10m" in out
        assert f'"0 {zone}" $binary_remote_addr;' in out  # counted in its own zone only
    assert "limit_conn_zone $limit_addr zone=conns:10m;" in out
    assert "limit_conn conns 9;" in out
    assert "limit_req_status 429;" in out and "limit_conn_status 429;" in out
    # every location inherits the limits: none sets its own
    server = out[out.index("    server {") :]
    assert server.count("limit_req zone=") == 3 and server.count("limit_conn ") == 1


def test_the_request_classes() -> None:
    out = render(_settings())
    classes = dict(
        (m.group(1).replace("\\?", "?"), m.group(2))
        for m in re.finditer(r'"~\^(.+?)"\s+(\w+);', out[out.index("$request_class {") :])
    )
    assert classes["POST /v1/drivers/[^/?]+/location(?|$)"] == "locations"
    assert classes["POST /v1/locations(?|$)"] == "locations"
    assert classes["POST /v1/(rides|quotes)(?|$)"] == "rides"


def test_exempt_addresses_are_not_limited() -> None:
    out = render(_settings(limit_exempt=("127.0.0.0/8", "10.1.2.3")))
    geo = out[out.index("geo $limit_exempt {") :]
    geo = geo[: geo.index("}")]
    assert "127.0.0.0/8 1;" in geo and "10.1.2.3 1;" in geo and "default 0;" in geo
    assert "geo $limit_exempt {\n        default 0;\n\n    }" in render(_settings())


@pytest.mark.parametrize(
    ("status", "code", "retry"),
    [
        (400, "bad_request", False),
        (413, "body_too_large", False),
        (429, "rate_limited", True),
        (431, "headers_too_large", False),
        (502, "bad_gateway", True),
        (503, "unavailable", True),
        (504, "gateway_timeout", False),
    ],
)
def test_every_error_nginx_makes_is_json(status: int, code: str, retry: bool) -> None:
    out = render(_settings())
    page = f"error_page {status} /__error/{status};"
    if status == 431:  # nginx's own code for headers too large, answered as 431
        page = "error_page 414 494 =431 /__error/431;"
    assert page in out
    block = out[out.index(f"location = /__error/{status} {{") :]
    block = block[: block.index("}\n")]
    assert "internal;" in block and "default_type application/json;" in block
    assert "add_header X-Request-Id $req_id always;" in block
    assert ("add_header Retry-After 1 always;" in block) is retry
    body = re.search(rf"return {status} '(.*)\\n';", block)
    assert body is not None
    parsed = orjson.loads(body.group(1).replace("$req_id", "abc"))
    assert parsed["error"] == code and parsed["message"] and parsed["request_id"] == "abc"
