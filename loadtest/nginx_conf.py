"""Renders nginx/nginx.conf.template: the one nginx config of the stack launcher and compose.

`python -m loadtest.nginx_conf --upstream dispatch1:8080 ... --out /conf/nginx.conf` is how the
compose file renders it, so both run the same template through the same code.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, fields
from pathlib import Path

TEMPLATE = Path(__file__).parent / "nginx" / "nginx.conf.template"
# Proxied sockets one worker holds: the template's worker_connections 8192, a client and an
# upstream connection each.
SOCKETS_PER_WORKER = 4096
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True)
class GatewayLimits:
    """Per client address. Generous: many phones share one address behind a carrier's
    NAT; these stop one client flooding, the service's per-token limits do the rest."""

    rate_locations: str = "50r/s"  # POST .../location and fleet batches
    burst_locations: int = 100
    rate_rides: str = "10r/s"  # POST /v1/rides and /v1/quotes
    burst_rides: int = 20
    rate_reads: str = "100r/s"  # everything else
    burst_reads: int = 200
    conn_per_addr: int = 200  # requests in progress, open WebSockets and streams included


@dataclass(frozen=True)
class NginxSettings:
    upstreams: tuple[str, ...]  # "host:port" of every dispatch instance
    listen: str  # "127.0.0.1:8080" or "8080"
    run_dir: str  # pid and temp files; must exist and be writable
    access_log: str = "off"
    error_log: str = "stderr"
    worker_processes: str = "1"
    keepalive: int = 64  # idle upstream connections kept per worker
    max_fails: int = 3
    fail_timeout_s: int = 10
    client_max_body_size: str = "1m"
    limits: GatewayLimits = GatewayLimits()
    # Client addresses or CIDRs never limited (a load generator on this machine).
    limit_exempt: tuple[str, ...] = ()
    # TLS termination (HTTP/1.1 and HTTP/2) on a second listener, when given.
    tls_listen: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None


def placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def _access_log(path: str) -> str:
    # Buffered so logging stays off the hot path; flushed every second for tail -f.
    return "off" if path == "off" else f"{path} upstream buffer=64k flush=1s"


def _tls(settings: NginxSettings) -> str:
    if settings.tls_listen is None:
        return ""
    if not (settings.tls_cert and settings.tls_key):
        raise ValueError("a TLS listener needs a certificate and its key")
    # `listen ... ssl http2`: nginx 1.22 (Debian's) knows no separate `http2 on;` yet.
    return "\n".join(
        [
            f"        listen {settings.tls_listen} ssl http2;",
            f"        ssl_certificate {settings.tls_cert};",
            f"        ssl_certificate_key {settings.tls_key};",
            "        ssl_protocols TLSv1.2 TLSv1.3;",
            "        ssl_session_cache shared:tls:10m;",
            "        ssl_session_timeout 1h;",
        ]
    )


def render(settings: NginxSettings, template: str | None = None) -> str:
    if not settings.upstreams:
        raise ValueError("nginx needs at least one upstream instance")
    text = TEMPLATE.read_text() if template is None else template
    servers = "\n".join(
        f"        server {u} max_fails={settings.max_fails} "
        f"fail_timeout={settings.fail_timeout_s}s;"
        for u in settings.upstreams
    )
    values = {
        "servers": servers,
        "listen": settings.listen,
        "run_dir": settings.run_dir,
        "access_log": _access_log(settings.access_log),
        "error_log": settings.error_log,
        "worker_processes": settings.worker_processes,
        "keepalive": str(settings.keepalive),
        "client_max_body_size": settings.client_max_body_size,
        "limit_exempt": "\n".join(f"        {a} 1;" for a in settings.limit_exempt),
        "tls": _tls(settings),
        **{f.name: str(getattr(settings.limits, f.name)) for f in fields(GatewayLimits)},
    }
    missing = placeholders(text) - values.keys()
    if missing:
        raise KeyError(f"template placeholders without a value: {sorted(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", action="append", required=True, help="host:port, repeatable")
    p.add_argument("--listen", default="8080")
    p.add_argument("--run-dir", default="/tmp/nginx-run")
    p.add_argument("--access-log", default="/dev/stdout")
    p.add_argument("--error-log", default="stderr")
    p.add_argument("--worker-processes", default="auto")
    p.add_argument(
        "--limit-exempt", action="append", default=[],
        help="a client address or CIDR never limited (a load generator), repeatable; "
        "'none' for nobody",
    )  # fmt: skip
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    settings = NginxSettings(
        upstreams=tuple(a.upstream),
        listen=a.listen,
        run_dir=a.run_dir,
        access_log=a.access_log,
        error_log=a.error_log,
        worker_processes=a.worker_processes,
        limit_exempt=tuple(x for x in a.limit_exempt if x != "none"),
    )
    Path(a.run_dir).mkdir(parents=True, exist_ok=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(render(settings))


if __name__ == "__main__":
    main()
