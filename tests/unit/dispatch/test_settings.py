"""Settings: converted by each field's type, checked by its rule, and a bad one is one
line naming the variable (or flag) and exit code 2 from the CLI, never a traceback."""

from __future__ import annotations

from dataclasses import fields
from typing import get_type_hints

import pytest

from dispatch.entrypoints import cli
from dispatch.settings import RULES, Settings, SettingsError, from_env


def test_settings_come_from_the_environment_then_flags() -> None:
    env = {
        "DISPATCH_PORT": "9000",
        "DISPATCH_OFFER_TIMEOUT_S": "2.5",
        "DISPATCH_REDIS_URL": "redis://h:1/0",
        "DISPATCH_INSTANCE_ID": "x",
        "DISPATCH_HOST": "",  # empty is unset
    }
    s = from_env(env, port=9001)
    assert (s.port, s.offer_timeout_s, s.redis_url, s.instance, s.backend, s.host) == (
        9001, 2.5, "redis://h:1/0", "x", "redis", "127.0.0.1"
    )  # fmt: skip
    assert from_env({}).backend == "embedded"
    assert from_env({"DISPATCH_MAX_ATTEMPTS": "7"}).max_attempts == 7
    assert Settings(port=81).instance.endswith("-81")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DISPATCH_PORT": "abc"}, "DISPATCH_PORT must be a whole number"),
        ({"DISPATCH_PORT": "80.5"}, "DISPATCH_PORT must be a whole number"),
        ({"DISPATCH_PORT": "70000"}, "DISPATCH_PORT must be from 0 to 65535"),
        ({"DISPATCH_OFFER_TIMEOUT_S": "0"}, "DISPATCH_OFFER_TIMEOUT_S must be above 0"),
        ({"DISPATCH_OFFER_TIMEOUT_S": "nan"}, "DISPATCH_OFFER_TIMEOUT_S must be a finite number"),
        ({"DISPATCH_REQUEST_TIMEOUT_S": "-1"}, "DISPATCH_REQUEST_TIMEOUT_S must be above 0"),
        ({"DISPATCH_DRIVER_RATE_BURST": "0"}, "DISPATCH_DRIVER_RATE_BURST must be at least 1"),
        ({"DISPATCH_REGION_RES": "12"}, "DISPATCH_REGION_RES must be from 0 to 10"),
        ({"DISPATCH_JWT_SECRET": "short"}, "DISPATCH_JWT_SECRET must be at least 32 bytes"),
        (
            {"DISPATCH_REDIS_URL": "redis://a", "DISPATCH_REDIS_CLUSTER_URL": "redis://b"},
            "DISPATCH_REDIS_URL and DISPATCH_REDIS_CLUSTER_URL",
        ),
    ],
)
def test_a_bad_setting_names_its_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        from_env(env)
    assert str(caught.value).startswith(named)
    assert "short" not in str(caught.value)  # a secret is never echoed


def test_a_bad_flag_is_named_as_the_flag() -> None:
    with pytest.raises(SettingsError, match="^--offer-timeout-s must be above 0"):
        from_env({}, offer_timeout_s=-1.0)


def test_every_number_has_a_rule() -> None:
    hints = get_type_hints(Settings)
    numbers = {f.name for f in fields(Settings) if hints[f.name] in (int, float)}
    assert numbers <= set(RULES)
    for name, rule in RULES.items():
        assert rule(getattr(Settings(), name)) is None, name  # the defaults pass


@pytest.mark.parametrize("command", [["token", "driver", "d1"], ["serve"]])
def test_the_cli_says_one_line_and_exits_2(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DISPATCH_JWT_SECRET", "too-short")
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"dispatch {command[0]}: DISPATCH_JWT_SECRET must be at least 32")
