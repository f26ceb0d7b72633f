"""The ops map in a real browser: Debian's chromium driven by Playwright, against a real
`dispatch serve` on the embedded backend. scripts/test installs chromium when missing
(Playwright's own browser download is not used)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.domain.principals import Principal, Role
from tests.e2e.dispatch.conftest import SECRET, Served, serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
CENTRE = (52.52, 13.405)  # the default watched area (Settings.ops_lat/ops_lng)
TOKENS = TokenCodec(SECRET)


def token(role: Role, ident: str) -> str:
    return TOKENS.issue(Principal(role, ident), 3600)


@dataclass
class Api:
    """The service's HTTP API, called as its clients do."""

    base: str
    seq: dict[str, int] = field(default_factory=dict)

    def call(
        self, method: str, path: str, bearer: str | None, body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:  # fmt: skip
        req = urllib.request.Request(self.base + path, method=method, headers=headers or {})
        if bearer is not None:
            req.add_header("Authorization", f"Bearer {bearer}")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, data, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def fix(self, driver_id: str, lat: float, lng: float) -> None:
        seq = self.seq[driver_id] = self.seq.get(driver_id, 0) + 1
        body = {"lat": lat, "lng": lng, "ts": int(time.time() * 1000), "seq": seq}
        status, _ = self.call(
            "POST", f"/v1/drivers/{driver_id}/location", token(Role.DRIVER, driver_id), body
        )
        assert status == 202

    def driver(self, driver_id: str) -> dict[str, Any]:
        status, body = self.call("GET", f"/v1/drivers/{driver_id}", token(Role.DRIVER, driver_id))
        assert status == 200
        assert isinstance(body, dict)
        return body


# Module scope, not session: Playwright's sync API runs an event loop of its own while
# it is open, and the asyncio tests of other modules need theirs.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs it (apt-get install chromium)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture
def service() -> Iterator[Served]:
    served = serve("--instance-id", "e2e-ops")
    yield served
    served.stop(signal.SIGKILL if served.proc.poll() is None else signal.SIGTERM)


@pytest.fixture
def api(service: Served) -> Api:
    return Api(service.url)


@dataclass
class Watched:
    """A page with everything it said and asked for recorded."""

    page: Page
    errors: list[str]
    requests: list[str]
    shots: Path

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture
def open_page(browser: Browser, tmp_path: Path) -> Iterator[Any]:
    """open_page(url) -> Watched; screenshots go to the test's tmp_path (kept by pytest)."""
    contexts = []

    def open_(url: str) -> Watched:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        requests: list[str] = []

        def on_console(msg: ConsoleMessage) -> None:
            if msg.type == "error":
                errors.append(msg.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on("request", lambda req: requests.append(req.url))
        page.goto(url)
        return Watched(page, errors, requests, tmp_path)

    yield open_
    for context in contexts:
        context.close()
    if os.environ.get("CI"):
        print(f"ops map screenshots: {tmp_path}")
