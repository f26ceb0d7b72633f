"""The README's picture of the ops map: `dispatch demo` running its city (its four
products, its service area, no-pickup forecourt and airport queue, all put in by the demo
through the API), and the page in Debian's chromium after the city has run a while.

    .venv/bin/python -m tests.e2e.ops.readme_shot docs/ops-map.png
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.e2e.ops.conftest import CHROMIUM, CHROMIUM_ARGS

OPS_URL = re.compile(r"live ops map at (http://127\.0\.0\.1:\d+)/ops#token=(\S+)")


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
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{base}/ops#token={token}")
            page.wait_for_function("() => window.opsMap?.drawnDrivers() > 0")
            page.evaluate("() => window.opsMap.map.jumpTo({zoom: 12.4})")
            time.sleep(args.settle_s)
            page.screenshot(path=str(args.out))
            browser.close()
    finally:
        demo.terminate()
        demo.wait(timeout=30)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
