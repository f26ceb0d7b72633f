"""The ops map's bundle, shipped in the package, is built from the sources in web/ops."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
WEB = ROOT / "web" / "ops"
STATIC = ROOT / "dispatch" / "entrypoints" / "static" / "ops"


def sources() -> list[str]:
    """The files web/ops/build.mjs hashes (keep the two in step)."""
    src = [f"src/{p.name}" for p in (WEB / "src").iterdir()]
    return sorted(["build.mjs", "index.html", "package-lock.json", "package.json", *src])


def sources_sha256() -> str:
    digest = hashlib.sha256()
    for rel in sources():
        digest.update(rel.encode() + b"\0")
        digest.update((WEB / rel).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def manifest() -> dict[str, object]:
    return json.loads((STATIC / "manifest.json").read_text())


@pytest.mark.skipif(not WEB.is_dir(), reason="web/ops sources are not here (installed package)")
def test_the_bundle_is_built_from_the_current_sources() -> None:
    assert manifest()["sources_sha256"] == sources_sha256(), (
        "the ops map bundle is older than web/ops: run scripts/build-ops and commit "
        "dispatch/entrypoints/static/ops"
    )


def test_the_page_names_every_asset_and_each_is_shipped() -> None:
    assets = manifest()["assets"]
    assert isinstance(assets, list)
    page = (STATIC / "index.html").read_text()
    shipped = sorted(p.name for p in (STATIC / "assets").iterdir())
    assert shipped == sorted([*assets, *(f"{name}.gz" for name in assets)])
    assert all(f"/ops/assets/{name}" in page for name in assets if not name.endswith(".mjs"))


def test_the_page_loads_nothing_from_another_origin() -> None:
    page = (STATIC / "index.html").read_text()
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and all(link.startswith("/ops/assets/") or link == "data:," for link in links)
