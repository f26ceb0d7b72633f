"""The keepalive bench's "off" side: the upstream connection pool gone, nothing else."""

from __future__ import annotations

from loadtest.bench.nginx_keepalive import without_upstream_keepalive
from loadtest.nginx_conf import NginxSettings, render


def test_off_drops_only_the_upstream_blocks_keepalive_lines() -> None:
    on = render(NginxSettings(upstreams=("127.0.0.1:1", "127.0.0.1:2"), listen="1", run_dir="/x"))
    off = without_upstream_keepalive(on)
    upstream_on = on[on.index("upstream dispatch {") :].split("}", 1)[0]
    upstream_off = off[off.index("upstream dispatch {") :].split("}", 1)[0]
    assert "keepalive 64;" in upstream_on and "keepalive" not in upstream_off
    assert "server 127.0.0.1:2" in upstream_off
    # Client-side keepalive (server level) is the same on both sides.
    gone = set(on.splitlines()) - set(off.splitlines())
    assert {line.strip() for line in gone} == {
        "keepalive 64;",
        "keepalive_requests 100000;",
        "keepalive_timeout 60s;",
    }
    assert "keepalive_timeout 65s;" in off
