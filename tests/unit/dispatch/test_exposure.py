"""Secure by default: the development JWT secret only on loopback, unless the operator
says otherwise with a loudly named flag; compose requires a secret."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dispatch.entrypoints.exposure import dev_secret_refusal, insecure_allowed, is_loopback
from dispatch.settings import DEV_JWT_SECRET, Settings

ROOT = Path(__file__).resolve().parents[3]
REAL_SECRET = "x" * 40


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)
    assert dev_secret_refusal(Settings(host=host), allowed=False) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.org", "dispatch-1"])
def test_the_dev_secret_is_refused_anywhere_else(host: str) -> None:
    refusal = dev_secret_refusal(Settings(host=host), allowed=False)
    assert refusal is not None and "\n" not in refusal
    assert "DISPATCH_JWT_SECRET" in refusal and "--insecure-dev-secret" in refusal
    assert DEV_JWT_SECRET not in refusal
    assert dev_secret_refusal(Settings(host=host), allowed=True) is None
    assert dev_secret_refusal(Settings(host=host, jwt_secret=REAL_SECRET), allowed=False) is None


def test_the_flag_or_its_variable_allows_it() -> None:
    assert insecure_allowed(True, {})
    assert insecure_allowed(False, {"DISPATCH_INSECURE_DEV_SECRET": "1"})
    assert not insecure_allowed(False, {"DISPATCH_INSECURE_DEV_SECRET": "0"})
    assert not insecure_allowed(False, {})


def test_compose_requires_the_secret_and_publishes_none() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert DEV_JWT_SECRET not in text
    compose = yaml.safe_load(text)
    values = [
        svc["environment"]["DISPATCH_JWT_SECRET"]
        for svc in compose["services"].values()
        if isinstance(svc.get("environment"), dict) and "DISPATCH_JWT_SECRET" in svc["environment"]
    ]
    assert len(values) >= 4  # three instances and locust
    # ${VAR:?message}: compose stops with the message when the variable is unset or empty.
    assert all(v.startswith("${DISPATCH_JWT_SECRET:?") for v in values)


def test_the_image_says_the_secret_is_required_and_still_serves() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    service = dockerfile[dockerfile.index("AS service") :]
    assert "DISPATCH_HOST=0.0.0.0" in service and "DISPATCH_JWT_SECRET" in service
    assert "insecure" not in service  # the image never opts out
    assert 'CMD ["python", "-m", "dispatch", "serve"]' in service
