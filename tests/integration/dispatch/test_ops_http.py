"""The ops map over HTTP: the page and its headers, the assets and their caching, and the
stream's answers to each kind of token (the browser tests see the same from a page)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest

from dispatch.entrypoints.views_ops_map import STATIC
from dispatch.settings import Settings
from tests.integration.dispatch.conftest import Instance, running, settings_for


def assets() -> list[str]:
    return list(json.loads((STATIC / "manifest.json").read_text())["assets"])


def page_config(html: bytes) -> Any:
    found = re.search(rb'<script type="application/json" id="ops-config">(.*?)</script>', html)
    assert found is not None
    return json.loads(found.group(1))


async def events(resp: aiohttp.ClientResponse, n: int) -> list[tuple[str, Any]]:
    """The first n events of a server-sent event stream."""
    out: list[tuple[str, Any]] = []
    buffer = b""
    while len(out) < n:
        buffer += await asyncio.wait_for(resp.content.readany(), 5)
        while b"\n\n" in buffer and len(out) < n:
            block, buffer = buffer.split(b"\n\n", 1)
            if block.startswith(b"event: "):
                head, _, data = block.partition(b"\ndata: ")
                out.append((head[7:].decode(), orjson.loads(data)))
    return out


async def test_the_page_allows_nothing_from_elsewhere_and_names_the_watched_area(
    service: Instance,
) -> None:
    status, html, resp = await service.call("GET", "/ops")
    assert status == 200 and resp.headers["Content-Type"].startswith("text/html")
    assert resp.headers["Cache-Control"] == "no-cache"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self';" in csp and "https:" not in csp
    assert page_config(html) == {
        "area": {"lat": service.settings.ops_lat, "lng": service.settings.ops_lng},
        "basemap_style_url": None,
    }


async def test_a_configured_basemap_is_named_to_the_page_and_allowed_by_its_policy() -> None:
    style = "https://tiles.example/style.json?x=</script>"
    async with running(Settings(ops_basemap_style_url=style)) as inst:
        status, html, resp = await inst.call("GET", "/ops")
        assert status == 200 and b"</script>?" not in html  # escaped inside the JSON
        assert page_config(html)["basemap_style_url"] == style
        assert "connect-src 'self' https:" in resp.headers["Content-Security-Policy"]


async def test_assets_are_immutable_and_only_the_manifests_names_are_served(
    service: Instance,
) -> None:
    for name in assets():
        status, body, resp = await service.call("GET", f"/ops/assets/{name}")
        assert status == 200 and body == (STATIC / "assets" / name).read_bytes()
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        assert resp.headers["Content-Type"].startswith(kind)
    for bad in ("nope.js", "..%2Fmanifest.json", "manifest.json", f"{assets()[0]}.gz"):
        status, body, _ = await service.call("GET", f"/ops/assets/{bad}")
        assert status == 404 and body["error"] == "not_found"


async def test_assets_travel_gzipped_to_browsers_that_accept_it(service: Instance) -> None:
    name = next(a for a in assets() if a.endswith(".js"))
    async with aiohttp.ClientSession(auto_decompress=False) as raw:
        url = f"{service.url}/ops/assets/{name}"
        async with raw.get(url, headers={"Accept-Encoding": "gzip"}) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert await resp.read() == (STATIC / "assets" / f"{name}.gz").read_bytes()


async def test_the_stream_answers_ops_tokens_only(service: Instance) -> None:
    assert (await service.call("GET", "/v1/ops/stream"))[0] == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await service.call("GET", "/v1/ops/stream", headers=bad))[0] == 401
    for role in ("rider", "driver", "fleet"):
        status, body, _ = await service.call("GET", "/v1/ops/stream", (role, "x1"))
        assert status == 403 and body["error"] == "forbidden"


async def test_the_stream_sends_a_snapshot_then_what_changed(service: Instance) -> None:
    await service.fix("d1", 52.52, 13.405)
    headers = service.auth("ops", "o1")
    async with service.session.get(service.url + "/v1/ops/stream", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        assert resp.headers["X-Accel-Buffering"] == "no"
        [(kind, snap)] = await events(resp, 1)
        assert kind == "snapshot" and snap["drivers"]["id"] == ["d1"]
        assert snap["drivers"]["lat"] == [5252000] and snap["statuses"][0] == "available"
        await service.fix("d1", 52.521, 13.405, seq=2)
        [(kind, delta)] = await events(resp, 1)
        assert kind == "delta" and delta["moved"] == {"slot": [0], "dlat": [100], "dlng": [0]}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def on_backend(request: pytest.FixtureRequest) -> AsyncIterator[Instance]:
    """One instance on the embedded backend, or on a Redis of its own."""
    settings = replace(settings_for(request.param, request), instance_id="test-1")
    async with running(settings) as inst:
        yield inst


async def test_the_stream_says_what_each_driver_serves_and_when_a_new_vehicle_changes_it(
    on_backend: Instance,
) -> None:
    service = on_backend
    await service.fix("d1", 52.52, 13.405)
    await service.fix("d2", 52.521, 13.405)
    headers = service.auth("ops", "o1")
    async with service.session.get(service.url + "/v1/ops/stream", headers=headers) as resp:
        [(kind, snap)] = await events(resp, 1)
        assert kind == "snapshot"
        # Bit i for the catalog's i-th product; a driver never given a vehicle serves the
        # default product (economy, bit 0).
        assert snap["products"] == ["economy", "comfort", "xl", "wav"]
        by_id = dict(zip(snap["drivers"]["id"], snap["drivers"]["products"], strict=True))
        assert by_id == {"d1": 1, "d2": 1}
        vehicle = {"seats": 6, "products": ["economy", "xl"]}
        status, body, _ = await service.call(
            "PUT", "/v1/drivers/d2/status", ("driver", "d2"),
            json={"status": "available", "vehicle": vehicle},
        )  # fmt: skip
        assert status == 200, body
        slot = snap["drivers"]["id"].index("d2")
        for _ in range(5):  # the market's cells may change in a delta of their own first
            [(kind, delta)] = await events(resp, 1)
            if "products" in delta:
                break
        assert kind == "delta" and delta["products"] == {"slot": [slot], "products": [1 | 4]}


async def test_a_stream_replaced_by_a_newer_one_of_its_token_says_so_and_ends(
    service: Instance,
) -> None:
    headers = service.auth("ops", "o1")
    url = service.url + "/v1/ops/stream?access_token=" + headers["Authorization"][7:]
    first = await service.session.get(url)
    assert [k for k, _ in await events(first, 1)] == ["snapshot"]
    newer = [await service.session.get(url) for _ in range(service.settings.max_streams_per_owner)]
    assert await events(first, 1) == [("end", {"reason": "replaced"})]
    assert await first.content.read() == b""  # and the stream is over
    for resp in [first, *newer]:
        resp.close()


async def test_the_api_document_lists_the_page_and_the_stream_but_not_the_assets(
    service: Instance,
) -> None:
    _, doc, _ = await service.call("GET", "/openapi.json")
    assert {"/ops", "/v1/ops/stream"} <= set(doc["paths"])
    assert not [p for p in doc["paths"] if p.startswith("/ops/assets")]
