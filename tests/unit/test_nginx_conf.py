"""The nginx template renders completely and carries the routing rules the stack relies on."""

from __future__ import annotations

import re

import pytest

from loadtest.nginx_conf import TEMPLATE, NginxSettings, placeholders, render


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
    assert next_upstream == [
        "proxy_next_upstream error timeout;",
        "proxy_next_upstream error timeout non_idempotent;",
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
        "worker_processes", "keepalive", "client_max_body_size",
    }  # fmt: skip
