"""Installed dependencies are at or above the releases that fixed their published
advisories, and pyproject.toml asks for at least those releases (so a fresh install
cannot resolve below them)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"

# package -> (first fixed release, the advisories it fixed)
FLOORS: dict[str, tuple[str, str]] = {
    "aiohttp": ("3.14.3", "GHSA-cq5v-8q36-5273 (C parser OOB read), GHSA-mfx4-hv73-q22v "
                "(smuggling via WebSocket upgrade), GHSA-mq44-7p77-q5h7, and those of 3.14.0/1"),
    "PyJWT": ("2.12.0", "CVE-2026-32597 (unknown crit header accepted)"),
    "orjson": ("3.11.6", "CVE-2025-67221 (unbounded recursion on deep nesting)"),
    "redis": ("4.5.4", "CVE-2023-28858, CVE-2023-28859 (cancelled async command leaks data)"),
    "numpy": ("1.22.0", "CVE-2021-41495, CVE-2021-41496"),
    # Pulled in by locust (dev and the load-test image only).
    "Werkzeug": ("3.1.6", "CVE-2025-66221, CVE-2026-21860, CVE-2026-27199"),
    "Jinja2": ("3.1.6", "CVE-2024-56201, CVE-2024-56326, CVE-2025-27516"),
    "Flask": ("3.1.1", "CVE-2025-47278"),
    "requests": ("2.32.4", "CVE-2024-35195, CVE-2024-47081"),
    "urllib3": ("2.6.3", "CVE-2025-50181, CVE-2025-66418, CVE-2025-66471, CVE-2026-21441"),
}  # fmt: skip


def parse(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", v.split("+")[0])[:3])


def declared_floors() -> dict[str, str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    out = {}
    for spec in specs:
        m = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9.]+)", spec)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_installed_version_is_at_or_above_its_advisory_floor(package: str) -> None:
    floor, advisories = FLOORS[package]
    try:
        installed = version(package)
    except PackageNotFoundError:
        pytest.fail(f"{package} is not installed")
    assert parse(installed) >= parse(floor), f"{package} {installed} < {floor}: {advisories}"


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_pyproject_asks_for_at_least_the_fixed_release(package: str) -> None:
    declared = declared_floors().get(package.lower())
    assert declared is not None, f"pyproject.toml has no floor for {package}"
    assert parse(declared) >= parse(FLOORS[package][0]), (package, declared)
