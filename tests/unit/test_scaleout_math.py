"""The scale-out bench's pure parts: quota files, cgroup version choice, cpu.stat, efficiency."""

import pytest

from loadtest.bench.scaleout import efficiency
from loadtest.cgroups import Quota, parse_cpu_stat, pick_version, throttled


def test_a_fifth_of_a_core_over_10_ms_is_2_ms_of_quota_in_v1_and_v2_files():
    q = Quota(0.2, period_us=10_000)
    assert q.quota_us == 2_000
    # v1 checks the quota against the period in force: the period is written first.
    assert list(q.files("v1").items()) == [
        ("cpu.cfs_period_us", "10000"),
        ("cpu.cfs_quota_us", "2000"),
    ]
    assert q.files("v2") == {"cpu.max": "2000 10000"}


@pytest.mark.parametrize(
    ("cores", "period_us", "quota_us"),
    [(1.0, 10_000, 10_000), (0.5, 10_000, 5_000), (0.1, 50_000, 5_000), (0.05, 100_000, 5_000),
     (0.001, 1_000_000, 1_000)],
)  # fmt: skip
def test_by_default_the_period_is_10_ms_or_long_enough_for_a_5_ms_quota(cores, period_us, quota_us):
    q = Quota(cores)
    assert (q.period, q.quota_us) == (period_us, quota_us)


def test_a_quota_below_the_kernels_1_ms_minimum_is_raised_to_it():
    assert Quota(0.01, period_us=10_000).quota_us == 1_000


@pytest.mark.parametrize("cores", [0, -0.5, 100])
def test_a_quota_outside_0_to_64_cores_is_refused(cores):
    with pytest.raises(ValueError, match="positive number of cores"):
        Quota(cores)


def test_a_period_outside_1_ms_to_1_s_is_refused():
    with pytest.raises(ValueError, match="period"):
        Quota(0.2, period_us=500)


def test_v1_wins_on_a_hybrid_host_and_v2_needs_the_cpu_controller():
    assert pick_version(True, "hugetlb") == "v1"
    assert pick_version(False, "cpuset cpu io memory pids") == "v2"
    assert pick_version(False, "cpuset io memory") is None  # "cpuset" is not "cpu"
    assert pick_version(False, None) is None


def test_cpu_stat_of_v1_and_v2_gives_the_share_of_throttled_periods_and_the_wait():
    v1_before = parse_cpu_stat("nr_periods 100\nnr_throttled 10\nthrottled_time 5000000000\n")
    v1_after = parse_cpu_stat("nr_periods 300\nnr_throttled 160\nthrottled_time 6500000000\n")
    assert throttled(v1_before, v1_after) == {"periods_throttled_share": 0.75, "throttled_s": 1.5}
    v2 = "usage_usec 9\nnr_periods {}\nnr_throttled {}\nthrottled_usec {}\n"
    before, after = parse_cpu_stat(v2.format(0, 0, 0)), parse_cpu_stat(v2.format(50, 5, 250000))
    assert throttled(before, after) == {"periods_throttled_share": 0.1, "throttled_s": 0.25}


def test_no_periods_means_no_throttling_rather_than_a_division_by_zero():
    stat = parse_cpu_stat("nr_periods 7\nnr_throttled 0\nthrottled_time 0")
    assert throttled(stat, stat) == {"periods_throttled_share": 0.0, "throttled_s": 0.0}


def test_efficiency_is_throughput_over_n_times_one_instances():
    assert efficiency({1: 100.0, 2: 190.0, 4: 320.0, 3: 300.0}) == {
        1: 1.0,
        2: 0.95,
        3: 1.0,
        4: 0.8,
    }


def test_efficiency_without_a_single_instance_figure_is_refused():
    with pytest.raises(ValueError, match="throughput at 1"):
        efficiency({2: 190.0})
    with pytest.raises(ValueError, match="throughput at 1"):
        efficiency({1: 0.0, 2: 10.0})
