"""The city run's pure parts: per-request timelines over a window, the ramp down, CPU
between samples and the marginal cost between steps."""

from __future__ import annotations

import pytest

from loadtest.city_run import _all_open_at, _at, marginal
from loadtest.scenario.plan import plan
from loadtest.scenario.timeline import Named, window


def test_named_timelines_keep_each_request_and_metric_apart_across_workers() -> None:
    a, b = Named(), Named()
    a.add(100.2, "WS", "location ack", 4.0, False)
    a.add(100.4, "METRIC", "match latency", 2_000.0, False)
    b.add(100.6, "WS", "location ack", 8.0, True)
    b.add(101.1, "POST", "/v1/rides", 30.0, False)
    master = Named()
    master.merge(a.drain())
    master.merge(b.drain())
    got = master.to_json()
    assert got["WS location ack"] == {"100": [2, 1, {"4": 1, "8": 1}]}
    assert got["METRIC match latency"] == {"100": [1, 0, {"2000": 1}]}
    assert got["POST /v1/rides"] == {"101": [1, 0, {"30": 1}]}
    assert a.drain() == {"WS location ack": {}, "METRIC match latency": {}}


def test_a_window_counts_only_its_seconds() -> None:
    seconds = {
        "9": [50, 5, {"900": 50}],  # the ramp: left out
        "10": [98, 0, {"5": 97, "60": 1}],
        "11": [100, 1, {"5": 99, "120": 1}],
        "12": [10, 0, {"3000": 10}],  # after: left out
    }
    w = window(seconds, 10, 12)
    assert w == {
        "count": 198, "per_s": 99.0, "failures": 1, "p50_ms": 5.0, "p99_ms": 60.0,
        "max_ms": 120.0,
    }  # fmt: skip
    assert window({}, 10, 12)["count"] == 0


def test_a_short_ramp_down_after_a_long_ramp_up() -> None:
    users, total, ramp, down = 1001, 40.0, 30.0, 2.0
    assert plan(15.0, users, total, ramp, down) == (501, pytest.approx(1001 / 30))
    assert plan(37.0, users, total, ramp, down) == (users, pytest.approx(1001 / 30))
    assert plan(39.0, users, total, ramp, down)[0] == 500
    assert plan(40.0, users, total, ramp, down) is None


def test_cpu_at_a_time_between_two_samples() -> None:
    samples = [(100.0, {"x": 1.0}), (101.0, {"x": 1.5}), (102.0, {"x": 1.5})]
    assert _at(samples, 100.5, "x") == pytest.approx(1.25)
    assert _at(samples, 102.0, "x") == 1.5
    with pytest.raises(ValueError):
        _at(samples, 103.0, "x")


def _step(fleet: int, fixes_per_s: float, instances: float) -> dict:
    cost = {g: {"cores": instances if g == "instances" else 0.1} for g in
            ("instances", "nginx", "redis", "locust")}  # fmt: skip
    return {"fleet": fleet, "fixes": {"per_s": fixes_per_s}, "cost": cost}


def test_marginal_cost_per_fix_between_steps() -> None:
    got = marginal([_step(1000, 250, 0.4), _step(2000, 500, 0.6)])
    assert got == [{
        "fleets": [1000, 2000], "instances_ms_per_fix": 0.8, "nginx_ms_per_fix": 0.0,
        "redis_ms_per_fix": 0.0, "locust_ms_per_fix": 0.0,
    }]  # fmt: skip


def test_the_second_the_last_socket_opened() -> None:
    connects = {"12": [5, 0, {}], "10": [4, 1, {}], "11": [1, 0, {}]}
    assert _all_open_at(connects, 8) == 12
    assert _all_open_at(connects, 4) == 11
    assert _all_open_at(connects, 10) is None
