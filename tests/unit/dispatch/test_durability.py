"""DISPATCH_DURABLE_WRITES: parsed and checked like every setting, and a write the
replicas did not acknowledge in time is a 503 with its own code."""

from __future__ import annotations

import pytest

from dispatch.adapters.durable import DurabilityTimeout
from dispatch.durability import Durability, parse_durability
from dispatch.entrypoints.errors import to_error
from dispatch.settings import SettingsError, from_env


@pytest.mark.parametrize(
    ("raw", "value"),
    [("off", None), ("OFF", None), ("1:200", Durability(1, 200)), (" 2:50 ", Durability(2, 50))],
)
def test_off_or_replicas_and_timeout(raw: str, value: Durability | None) -> None:
    assert parse_durability(raw) == value


@pytest.mark.parametrize("raw", ["", "on", "1", "1:", ":200", "0:200", "1:0", "1:60001", "-1:5"])
def test_anything_else_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="must be"):
        parse_durability(raw)


def test_the_setting_is_checked_and_off_by_default() -> None:
    assert from_env({}).durable_writes == "off"
    assert from_env({"DISPATCH_DURABLE_WRITES": "1:200"}).durable_writes == "1:200"
    with pytest.raises(SettingsError, match="^DISPATCH_DURABLE_WRITES must be off or"):
        from_env({"DISPATCH_DURABLE_WRITES": "yes"})
    # WAIT must answer before the socket gives up on it.
    with pytest.raises(SettingsError, match="must be below DISPATCH_REDIS_TIMEOUT_S"):
        from_env({"DISPATCH_DURABLE_WRITES": "1:500", "DISPATCH_REDIS_TIMEOUT_S": "0.5"})


def test_a_durability_timeout_is_a_503_with_its_own_code() -> None:
    error = to_error(DurabilityTimeout("0 of 1 replicas acknowledged"))
    assert error is not None
    assert (error.status, error.code) == (503, "durability_timeout")
