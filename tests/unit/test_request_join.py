"""The load-run report joins nginx's access log and the instances' logs on request ids."""

from __future__ import annotations

from pathlib import Path

from loadtest.report.request_join import join

NGINX = (
    '127.0.0.1 [29/Nov/2026:23:59:00 +0000] "POST /v1/rides HTTP/1.1" 503 90 rt=1.0 '
    "ua=127.0.0.1:9001 us=503 uct=0.000 uht=1.0 urt=1.0 inst=i1 idem=k1 rid=aaa\n"
    '127.0.0.1 [29/Nov/2026:23:59:00 +0000] "GET /healthz HTTP/1.1" 200 15 rt=0.001 '
    "ua=127.0.0.1:9002 us=200 uct=0.000 uht=0.001 urt=0.001 inst=i2 idem= rid=bbb\n"
)


def test_failed_requests_come_with_what_their_instance_logged(tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    access.write_text(NGINX)
    one = tmp_path / "i1.log"
    one.write_text(
        "dispatch listening on http://127.0.0.1:9001\n"
        '{"level":"WARNING","logger":"x","message":"backend unavailable","request_id":"aaa"}\n'
        '{"ts":"t","level":"INFO","logger":"x","message":"shutting down"}\n'
    )
    joined = join(access, [one, tmp_path / "missing.log"])
    assert joined["requests"] == 2 and joined["requests_the_instances_logged"] == 1
    [failed] = joined["5xx_with_instance_log"]
    assert failed["request_id"] == "aaa" and failed["status"] == 503
    assert failed["instance_log"] == ["WARNING backend unavailable"]
