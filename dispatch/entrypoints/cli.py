"""The `dispatch` command: serve, token, demo, split-region."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import uvloop

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.domain.principals import parse_subject
from dispatch.entrypoints import split_cli
from dispatch.entrypoints.exposure import dev_secret_refusal, insecure_allowed
from dispatch.entrypoints.logs import configure as configure_logs
from dispatch.service_layer.errors import BackendUnavailable
from dispatch.settings import DEV_JWT_SECRET, Settings, SettingsError, from_env

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dispatch", description="Ride-hailing driver dispatch.")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP/WebSocket service")
    serve.add_argument("--host", help="listen address (DISPATCH_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (DISPATCH_PORT, default 8080)")
    backend = serve.add_mutually_exclusive_group()
    backend.add_argument("--redis-url", help="single Redis (DISPATCH_REDIS_URL)")
    backend.add_argument("--redis-cluster-url", help="Redis Cluster (DISPATCH_REDIS_CLUSTER_URL)")
    serve.add_argument("--instance-id", help="X-Instance-Id (DISPATCH_INSTANCE_ID)")
    serve.add_argument("--offer-timeout-s", type=float, help="DISPATCH_OFFER_TIMEOUT_S, default 15")
    serve.add_argument(
        "--insecure-dev-secret", action="store_true",
        help="allow the built-in development JWT secret on a non-loopback address "
        "(DISPATCH_INSECURE_DEV_SECRET=1); anyone can then mint tokens",
    )  # fmt: skip
    token = sub.add_parser("token", help="print a bearer token for local use")
    token.add_argument("role", choices=["driver", "rider", "fleet", "ops"])
    token.add_argument("id", help="driver id, rider id, fleet gateway or operator name")
    token.add_argument("--ttl-s", type=int, default=24 * 3600, help="lifetime, default 24 h")
    demo = sub.add_parser("demo", help="the service with simulated drivers and riders")
    demo.add_argument("--duration", type=float, default=30.0, help="seconds, default 30")
    demo.add_argument("--drivers", type=int, default=60)
    demo.add_argument("--riders-per-s", type=float, default=2.0)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--match-window-ms", type=int, default=None,
        help="0: immediate matching; above 0: batched in windows of this length (default: "
        "the service's, 2000)",
    )  # fmt: skip
    demo.add_argument(
        "--keep-running", action="store_true",
        help="past --duration, keep the city running while an ops map page is open",
    )  # fmt: skip
    split_cli.add_parser(sub)
    return p


def _warn_dev_secret(settings: Settings) -> None:
    if settings.jwt_secret == DEV_JWT_SECRET:
        print(
            "warning: using the built-in development JWT secret; set DISPATCH_JWT_SECRET "
            "for anything but local use",
            file=sys.stderr,
        )


def _serve(args: argparse.Namespace) -> int:
    from dispatch.entrypoints.server import announce, serve

    settings = from_env(
        host=args.host,
        port=args.port,
        redis_url=args.redis_url,
        redis_cluster_url=args.redis_cluster_url,
        instance_id=args.instance_id,
        offer_timeout_s=args.offer_timeout_s,
    )
    configure_logs(settings)  # JSON lines (DISPATCH_LOG_FORMAT) at DISPATCH_LOG_LEVEL
    refusal = dev_secret_refusal(settings, insecure_allowed(args.insecure_dev_secret, os.environ))
    if refusal is not None:
        print(f"dispatch serve: {refusal}", file=sys.stderr)
        return 2
    _warn_dev_secret(settings)
    try:
        uvloop.run(serve(settings, announce(settings)))
    except (BackendUnavailable, OSError) as exc:
        # Start-up only: at run time an unreachable backend is a 503, not an exit.
        print(f"dispatch serve: cannot start ({settings.backend}): {exc}", file=sys.stderr)
        return 1
    return 0


def _token(args: argparse.Namespace) -> int:
    settings = from_env()
    _warn_dev_secret(settings)
    try:
        principal = parse_subject(f"{args.role}:{args.id}")
    except ValueError as exc:
        print(f"dispatch token: {exc}", file=sys.stderr)
        return 2
    print(TokenCodec(settings.jwt_secret).issue(principal, args.ttl_s))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from dispatch.demo.run import run_demo

    demo = run_demo(
        args.duration, args.drivers, args.riders_per_s, args.seed, args.keep_running,
        args.match_window_ms,
    )  # fmt: skip
    return int(uvloop.run(demo))


def _split_region(args: argparse.Namespace) -> int:
    return int(uvloop.run(split_cli.run(args)))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    handlers = {"serve": _serve, "token": _token, "demo": _demo, "split-region": _split_region}
    try:
        return handlers[args.command](args)
    except SettingsError as exc:
        # A bad setting is the operator's to fix: one line that names it, no traceback.
        print(f"dispatch {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
