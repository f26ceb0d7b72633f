"""The load run's chaos schedule and fault impact, the soak's slope check, and the load
clients' gateway failover: pure logic, no processes."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from loadtest.campaign.chaos import Fault, impact, schedule
from loadtest.report.soak import analyse, key_counts, slope
from loadtest.scenario.gateways import Gateways, parse


def test_untimed_faults_spread_evenly_over_the_hold_phase() -> None:
    got = schedule("kill-master,kill-instance,kill-nginx", duration_s=120, ramp_s=20)
    # hold 20..100 s, four slots of 20 s
    assert got == [
        Fault("kill-master", 40.0),
        Fault("kill-instance", 60.0),
        Fault("kill-nginx", 80.0),
    ]


def test_timed_faults_keep_their_time_and_come_out_in_order() -> None:
    got = schedule("kill-nginx@70, kill-master@30", duration_s=100, ramp_s=10)
    assert got == [Fault("kill-master", 30.0), Fault("kill-nginx", 70.0)]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "at least one fault"),
        ("kill-redis", "unknown fault 'kill-redis'"),
        ("kill-master@soon", "seconds"),
        ("kill-master@200", "within the 100 s run"),
        ("kill-master,kill-master", "at most once"),
    ],
)
def test_a_bad_schedule_is_refused_with_a_clear_reason(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        schedule(spec, duration_s=100, ramp_s=10)


def test_a_run_without_a_hold_phase_cannot_take_faults() -> None:
    with pytest.raises(ValueError, match="no hold phase"):
        schedule("kill-master", duration_s=20, ramp_s=10)


def test_impact_counts_each_faults_errors_until_the_next_fault() -> None:
    done = [
        {"fault": "kill-master", "at": 1000.0, "target": "redis"},
        {"fault": "kill-nginx", "at": 1030.0, "target": "nginx"},
    ]
    failures = [
        {"t": 990.0, "status": 503, "error": ""},  # before any fault: nobody's
        {"t": 1002.5, "status": 503, "error": ""},
        {"t": 1004.0, "status": 409, "error": ""},  # a failure, not an error
        {"t": 1006.0, "status": 502, "error": ""},
        {"t": 1030.5, "status": 0, "error": "ConnectionRefusedError"},
        {"t": 1031.0, "status": 0, "error": "CatchResponseError"},
    ]
    master, nginx = impact(done, failures, start=960.0, end=1060.0)
    assert master["at_s"] == 40.0
    assert master["failures"] == 3 and master["errors"] == 2
    assert master["failures_by_status"] == {"409": 1, "502": 1, "503": 1}
    assert master["error_window_s"] == [2.5, 6.0] and master["recovery_s"] == 6.0
    assert nginx["failures_by_status"] == {"no answer": 2}
    assert nginx["error_window_s"] == [0.5, 1.0]


def test_a_fault_without_errors_has_no_window_and_no_recovery_time() -> None:
    (only,) = impact([{"fault": "kill-instance", "at": 10.0, "target": "i3"}], [], 0.0, 60.0)
    assert only["errors"] == 0 and only["error_window_s"] is None and only["recovery_s"] == 0.0


def test_a_steady_climb_is_flagged_and_flat_noise_is_not() -> None:
    rng = random.Random(7)
    flat = [(t * 10.0, 100.0 + rng.uniform(-2, 2)) for t in range(60)]
    climb = [(t * 10.0, 100.0 + t * 0.5 + rng.uniform(-2, 2)) for t in range(60)]
    tiny = [(t * 10.0, 1000.0 + t * 0.01) for t in range(60)]  # real, but 0.06 %: no leak
    assert not slope(flat)["flag"]
    assert slope(climb)["flag"]
    assert slope(climb)["per_hour"] == pytest.approx(180.0, rel=0.1)  # 0.5 per 10 s
    assert not slope(tiny)["flag"]


def test_only_the_steady_window_is_judged() -> None:
    samples = [
        {"t": float(t), "instances": {"i1": {"rss_mb": 50.0 + min(t, 30), "fds": 20}}}
        for t in range(0, 120, 10)
    ]
    # Climbs during the ramp (0-30 s), flat after: no flag from the window 40-110 s.
    assert analyse(samples, 40, 110)["flagged"] == []
    assert analyse(samples, 0, 110)["flagged"] == ["i1 rss_mb"]


def test_keys_count_per_region_by_the_regions_hash_tag_and_per_family() -> None:
    regions, families = key_counts(
        [
            "gi:{r851f18b3fffffff}:geo",
            "mk:{r851f18b3fffffff}:b:12",
            "gi:{r851f1d4bfffffff}:geo",
            "dispatch:rider:{r26ba96b39aa44555}:rides",  # a rider id, not a region
            "dispatch:ride:{abc}",
            "dispatch:ride:{def}",
        ]
    )
    assert regions == {"851f18b3fffffff": 2, "851f1d4bfffffff": 1}
    assert families["dispatch:ride:{}"] == 2
    assert families["dispatch:rider:{}:rides"] == 1


def test_users_spread_over_the_gateways_and_move_on_to_the_next() -> None:
    urls = parse("http://a:1, http://b:2/", default="http://ignored")
    assert urls == ["http://a:1", "http://b:2"]
    assert parse("", default="http://h:8080") == ["http://h:8080"]
    client = SimpleNamespace(base_url="")
    firsts = {Gateways(urls, random.Random(seed)).url for seed in range(20)}
    assert firsts == set(urls)
    in_turn = [Gateways(urls, random.Random(0), turn=t).url for t in range(5, 9)]
    assert in_turn == [urls[1], urls[0], urls[1], urls[0]]
    g = Gateways(urls, random.Random(1), client)
    first = g.url
    assert client.base_url == first
    other = g.failover()
    assert other != first
    assert client.base_url == other and g.moves == 1
    assert g.failover() == first  # and round again
