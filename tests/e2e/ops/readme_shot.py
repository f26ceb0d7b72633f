"""The README's picture of the ops map: `dispatch demo` running its city, a few areas put
in it through the API (a service area over the city, a no-pickup area, an airport with
its queue), and the page in Debian's chromium after the city has run a while.

    .venv/bin/python -m tests.e2e.ops.readme_shot docs/ops-map.png
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from dispatch.adapters.jwt_tokens import TokenCodec
from dispatch.demo.city import CENTRE, HALF_SIDE_M, offset
from dispatch.domain.geo import LatLng
from dispatch.domain.principals import Principal, Role
from dispatch.settings import Settings
from tests.e2e.ops.conftest import CHROMIUM, CHROMIUM_ARGS

OPS_URL = re.compile(r"live ops map at (http://127\.0\.0\.1:\d+)/ops#token=(\S+)")


def square(lat: float, lng: float, half_m: float) -> list[list[list[float]]]:
    sw = offset(LatLng(lat, lng), -half_m, -half_m)
    ne = offset(LatLng(lat, lng), half_m, half_m)
    ring = [
        [sw.lng, sw.lat],
        [ne.lng, sw.lat],
        [ne.lng, ne.lat],
        [sw.lng, ne.lat],
        [sw.lng, sw.lat],
    ]
    return [ring]


AIRPORT = (52.5045, 13.4330)
# The demo city's areas, for the picture: the whole square is served, one block refuses
# pickups (a ride asked there is refused, as the demo's summary counts), and an airport in
# the south-east corner has drivers queueing.
AREAS: dict[str, tuple[str, str, list[list[list[float]]]]] = {
    "demo-city": ("service_area", "Demo city", square(CENTRE.lat, CENTRE.lng, HALF_SIDE_M + 200)),
    "alex-works": ("no_pickup", "Alexanderplatz works", square(52.5219, 13.4132, 180)),
    "demo-airport": ("airport", "Airport", square(*AIRPORT, 350)),
}


# Drivers waiting at the airport (the demo's own drivers keep moving), parked by the
# script itself: their fixes keep them fresh and queued.
PARKED = [(f"parked{i}", AIRPORT[0] - 0.0015 + 0.0012 * i, AIRPORT[1] - 0.001) for i in range(3)]


def call(base: str, method: str, path: str, token: str, body: object) -> None:
    req = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(), method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status in (200, 202), resp.status


def put_areas(base: str, token: str) -> None:
    for area_id, (kind, name, polygon) in AREAS.items():
        body = {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": polygon},
            "properties": {"kind": kind, "name": name, "dwell_s": 5},
        }
        call(base, "PUT", f"/v1/areas/{area_id}", token, body)


def park(base: str, seq: int) -> None:
    """One fix for each parked driver (the demo's service uses the default secret)."""
    tokens = TokenCodec(Settings().jwt_secret)
    for driver_id, lat, lng in PARKED:
        token = tokens.issue(Principal(Role.DRIVER, driver_id), 600)
        body = {"lat": lat, "lng": lng, "ts": int(time.time() * 1000), "seq": seq}
        call(base, "POST", f"/v1/drivers/{driver_id}/location", token, body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--settle-s", type=float, default=40.0, help="the city runs this long")
    args = parser.parse_args()
    demo = subprocess.Popen(
        [sys.executable, "-m", "dispatch", "demo", "--duration", "5", "--keep-running"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert demo.stderr is not None
        for line in demo.stderr:
            if found := OPS_URL.search(line):
                base, token = found.groups()
                break
        else:
            raise SystemExit("dispatch demo printed no ops map URL")
        # Keep reading its progress lines, so the demo never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in demo.stderr or []], daemon=True).start()
        put_areas(base, token)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{base}/ops#token={token}")
            page.wait_for_function("() => window.opsMap?.drawnDrivers() > 0")
            page.evaluate("() => window.opsMap.map.jumpTo({zoom: 12.4})")
            started = time.monotonic()
            for seq in range(1, 1_000):  # until the city has run settle_s
                park(base, seq)
                if time.monotonic() - started >= args.settle_s:
                    break
                time.sleep(5)
            time.sleep(1.5)  # the feed's next look and the page's next frame
            page.screenshot(path=str(args.out))
            browser.close()
    finally:
        demo.terminate()
        demo.wait(timeout=30)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
