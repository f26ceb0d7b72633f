"""The simulator: one seed, the same riders for every policy, KPIs for each."""

from __future__ import annotations

import random

import pytest

from dispatch.simulate.__main__ import main
from dispatch.simulate.city import SimCity
from dispatch.simulate.run import run_policy


def test_a_seed_draws_the_same_riders_every_time() -> None:
    city = SimCity()
    assert city.requests(random.Random(3), 120) == city.requests(random.Random(3), 120)
    assert city.requests(random.Random(3), 120) != city.requests(random.Random(4), 120)


@pytest.mark.parametrize("window_ms", [0, 2000])
async def test_a_short_run_matches_riders_under_either_policy(window_ms: int) -> None:
    city = SimCity()
    requests = city.requests(random.Random(1), 180)
    kpis = await run_policy(city, requests, 180, 1, 120, window_ms)
    assert kpis["requests"] == len(requests) > 0
    assert kpis["matched"] > 0.8 * kpis["requests"]
    assert kpis["pickup_eta_s_mean"] > 0
    if window_ms:
        assert kpis["windows"] > 0 and kpis["rider_wait_s_mean"] > 0
    else:
        assert kpis["rider_wait_s_mean"] == 0


def test_the_command_prints_one_run_per_policy_and_window(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import orjson

    assert main(["--minutes", "1", "--drivers", "40", "--window-ms", "1000,2000"]) == 0
    out = orjson.loads(capsys.readouterr().out)
    assert [(r["policy"], r["window_ms"]) for r in out["runs"]] == [
        ("immediate", 0), ("batched", 1000), ("batched", 2000)
    ]  # fmt: skip


def test_no_rider_waits_for_a_first_offer_past_the_maximum_wait(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import orjson

    def run(max_wait_s: int) -> dict[str, float]:
        argv = ["--minutes", "3", "--drivers", "60", "--demand", "4", "--window-ms", "1000"]
        assert main([*argv, "--policy", "batched", "--max-wait-s", str(max_wait_s)]) == 0
        out = orjson.loads(capsys.readouterr().out)
        assert out["max_wait_s"] == max_wait_s
        (kpis,) = out["runs"]
        return kpis  # type: ignore[no-any-return]

    held, brief = run(30), run(1)
    assert brief["no_driver"] > 0  # supply this tight leaves riders unmatched, and
    assert brief["rider_wait_s_p95"] <= 1 + 1  # none waits past the maximum wait (+ a window)
    assert held["rider_wait_s_p95"] > brief["rider_wait_s_p95"]  # as they do with 30 s
