"""The process around the app: graceful SIGTERM, the token command, `python -m dispatch`,
and an offer timeout that fires after the offering process was killed outright."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import aiohttp
import jwt
import pytest

from tests.waiting import eventually

from .conftest import SECRET, Served, serve
from .test_whole_ride import PICKUP, auth, next_frame


async def test_sigterm_closes_websockets_with_1001_and_exits_cleanly(embedded: Served) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{embedded.url}/v1/drivers/d1/stream"
        async with http.ws_connect(url, headers=auth("driver:d1")) as ws:
            await ws.send_json({"type": "ping"})
            assert (await next_frame(ws, "pong")) == {"type": "pong"}
            embedded.proc.send_signal(signal.SIGTERM)
            msg = await ws.receive(timeout=10)
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1001
    assert await asyncio.to_thread(embedded.proc.wait, 15) == 0
    embedded.stop()
    assert any("shutting down" in line for line in embedded.output)


def run_cli(*args: str, secret: str | None = SECRET) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    if secret is not None:
        env["DISPATCH_JWT_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "dispatch", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_token_prints_a_verifiable_bearer_token() -> None:
    out = run_cli("token", "driver", "d42", "--ttl-s", "120")
    assert out.returncode == 0 and out.stderr == ""
    claims = jwt.decode(out.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "driver:d42" and 100 <= claims["exp"] - time.time() <= 121
    bad = run_cli("token", "driver", "bad id")
    assert bad.returncode == 2 and "not a valid subject" in bad.stderr


def test_the_dev_secret_comes_with_a_warning() -> None:
    out = run_cli("token", "rider", "r7", secret=None)
    assert out.returncode == 0 and "development JWT secret" in out.stderr


def test_serve_refuses_the_dev_secret_on_a_public_address() -> None:
    out = run_cli("serve", "--host", "0.0.0.0", "--port", "0", secret=None)
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "development JWT secret" in lines[0], out.stderr
    assert "--insecure-dev-secret" in lines[0]


@pytest.mark.slow
def test_the_demo_runs_and_prints_its_summary() -> None:
    out = run_cli("demo", "--duration", "6", "--drivers", "8", "--riders-per-s", "2")
    assert out.returncode == 0, out.stderr
    # the service's default mode, said as such, and what it achieved for the riders
    assert "matching               batched, 2000 ms windows" in out.stdout
    assert "rides matched          0 " not in out.stdout
    assert re.search(r"match latency +p50 \d+\.\d ms, p99 \d+\.\d ms", out.stdout), out.stdout
    assert re.search(r"pickup ETA +mean \d+ s, p95 \d+ s", out.stdout), out.stdout
    assert "fare quotes" in out.stdout  # every simulated rider asks for a quote first
    assert "errors                 0" in out.stdout
    # the city's areas, made through the API: an airport queue and a service area
    assert "airport queue" in out.stdout and "refused outside the service area" in out.stdout
    # riders ask for products, drivers got vehicles by the fleet call: matches per product
    per_product = next(line for line in out.stdout.splitlines() if "per product" in line)
    assert re.search(r"(economy|comfort|xl|wav) \d+/\d+ accepted", per_product), per_product


@pytest.mark.slow
def test_the_demo_runs_immediate_matching_and_says_so() -> None:
    out = run_cli(
        "demo", "--duration", "4", "--drivers", "8", "--riders-per-s", "2",
        "--match-window-ms", "0",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "matching               immediate" in out.stdout
    assert "rides matched" in out.stdout and "match latency" in out.stdout
    assert "errors                 0" in out.stdout


@pytest.mark.slow
@pytest.mark.redis
async def test_an_offer_times_out_after_its_instance_was_killed(redis_url: str) -> None:
    survivor = serve(
        "--redis-url", redis_url, "--instance-id", "B", env={"DISPATCH_OFFER_TIMEOUT_S": "1"}
    )
    doomed = serve(
        "--redis-url", redis_url, "--instance-id", "A", env={"DISPATCH_OFFER_TIMEOUT_S": "1"}
    )
    try:
        async with aiohttp.ClientSession() as http:
            now = int(time.time() * 1000)
            for i, lat in (("1", 52.5201), ("2", 52.5203)):
                async with http.post(
                    f"{doomed.url}/v1/drivers/k{i}/location",
                    headers=auth(f"driver:k{i}"),
                    json={"lat": lat, "lng": 13.405, "ts": now, "seq": 1},
                ) as r:
                    assert r.status == 202
            async with http.post(
                f"{doomed.url}/v1/rides", headers=auth("rider:u1"), json={"pickup": PICKUP}
            ) as r:
                ride = await r.json()
            assert ride["driver_id"] == "k1"
            doomed.stop(signal.SIGKILL)

            async def passed_to_k2() -> Any:
                async with http.get(
                    f"{survivor.url}/v1/rides/{ride['id']}", headers=auth("rider:u1")
                ) as r:
                    now_ride = await r.json()
                assert now_ride["driver_id"] == "k2", now_ride
                return now_ride

            now_ride = await eventually(passed_to_k2, 10, 0.2, what="the survivor to offer k2")
            assert (now_ride["status"], now_ride["driver_id"]) == ("offered", "k2")
    finally:
        doomed.stop(signal.SIGKILL)
        survivor.stop()


def test_an_unreachable_redis_at_start_up_is_a_clear_error() -> None:
    out = run_cli("serve", "--port", "0", "--redis-url", "redis://127.0.0.1:1/0")
    assert out.returncode == 1
    assert "dispatch serve: cannot start (redis)" in out.stderr
    assert "Traceback" not in out.stderr
