"""The hot-region ranking: node CPU and command rates from INFO deltas, the node CPU split over
its regions by load, the split rule with its suggested resolution, and the URL a node is
reached with."""

import pytest

from loadtest.hot_regions import _at
from loadtest.hot_regions_rank import (
    SEARCH_COST,
    Node,
    Region,
    command_rates,
    cpu_cores,
    is_proposed,
    rank,
    suggest,
)


def test_a_nodes_cpu_is_its_cpu_seconds_over_the_interval():
    assert cpu_cores(10.0, 11.5, 2.0) == pytest.approx(0.75)


def test_a_restarted_node_counts_its_cpu_from_zero_not_negative():
    assert cpu_cores(500.0, 0.3, 1.0) == pytest.approx(0.3)


def test_command_rates_are_the_deltas_over_the_interval_and_idle_commands_left_out():
    before = {"evalsha": (100, 2_000_000), "get": (10, 50)}
    after = {"evalsha": (1_100, 3_000_000), "get": (10, 50), "set": (5, 500)}
    assert command_rates(before, after, 2.0) == {
        "evalsha": (500.0, pytest.approx(0.5)),
        "set": (2.5, pytest.approx(0.00025)),
    }


def test_a_stats_reset_between_the_snapshots_counts_from_zero_not_negative():
    rates = command_rates({"get": (1_000, 90_000)}, {"get": (10, 4_000)}, 1.0)
    assert rates == {"get": (10.0, pytest.approx(0.004))}


def test_a_non_positive_interval_is_refused():
    with pytest.raises(ValueError, match="positive"):
        cpu_cores(0.0, 1.0, 0)
    with pytest.raises(ValueError, match="positive"):
        command_rates({}, {}, -1)


def _region(cell, node, writes, searches=None, drivers=100):
    return Region(cell, slot=1, node=node, drivers=drivers, writes_per_s=writes,
                  searches_per_s=searches)  # fmt: skip


def test_a_nodes_cpu_is_split_over_its_regions_in_proportion_to_their_writes():
    regions = [_region("a", "n1", 300), _region("b", "n1", 100), _region("c", "n2", 50)]
    rows = rank(regions, {"n1": Node("n1", 0.8), "n2": Node("n2", 0.1)})
    assert [(r.region.cell, r.share_of_node, r.cpu) for r in rows] == [
        ("a", 0.75, pytest.approx(0.6)),
        ("b", 0.25, pytest.approx(0.2)),
        ("c", 1.0, pytest.approx(0.1)),
    ]


def test_counted_searches_weigh_search_cost_writes_each():
    rows = rank([_region("a", "n", 100, searches=100), _region("b", "n", 400 + 100 * SEARCH_COST)],
                {"n": Node("n", 1.0)})  # fmt: skip
    assert {r.region.cell: r.share_of_node for r in rows} == {
        "a": pytest.approx((100 + 100 * SEARCH_COST) / (500 + 200 * SEARCH_COST)),
        "b": pytest.approx((400 + 100 * SEARCH_COST) / (500 + 200 * SEARCH_COST)),
    }


def test_a_node_without_writes_gives_its_regions_no_cpu_and_no_division_by_zero():
    rows = rank([_region("a", "n", 0), _region("b", "n", 0)], {"n": Node("n", 0.5)})
    assert [(r.share_of_node, r.cpu) for r in rows] == [(0.0, 0.0), (0.0, 0.0)]
    assert not any(is_proposed(r, 0.0, 0.0) for r in rows)


def test_a_region_is_proposed_only_on_a_busy_node_and_with_a_large_share_of_it():
    rows = rank(
        [_region("hot", "busy", 900), _region("cold", "busy", 100), _region("alone", "idle", 50)],
        {"busy": Node("busy", 0.9), "idle": Node("idle", 0.2)},
    )
    assert [r.region.cell for r in rows if is_proposed(r, 0.5, 0.25)] == ["hot"]
    # "alone" carries all of its node, but the node is below the threshold.
    assert [r.region.cell for r in rows if is_proposed(r, 0.1, 0.25)] == ["hot", "alone"]


def _row(cpu):
    (row,) = rank([_region("x", "n", 1)], {"n": Node("n", cpu)})
    return row


def test_res_6_is_suggested_when_its_busiest_child_falls_below_the_cap():
    row = _row(0.8)
    # cap = 0.25 * 0.5 = 0.125 cores; busiest res-6 child 1/7 of 0.8 = 0.114.
    suggest(row, {6: [1] * 7, 7: [1] * 49}, cpu_threshold=0.5, min_share=0.25)
    assert (row.proposed, row.suggested_res, row.still_hot) == (True, 6, False)
    assert row.busiest_child_fraction == {6: pytest.approx(1 / 7), 7: pytest.approx(1 / 49)}


def test_res_7_is_suggested_when_the_drivers_crowd_one_res_6_child():
    row = _row(0.8)
    six = [43, 1, 1, 1, 1, 1, 1]  # 0.88 of the region in one res-6 child
    seven = [1] * 49  # which res 7 spreads
    suggest(row, {6: six, 7: seven}, cpu_threshold=0.5, min_share=0.25)
    assert (row.suggested_res, row.still_hot) == (7, False)


def test_a_region_with_one_crowded_res_7_child_stays_hot_at_res_7():
    row = _row(0.8)
    suggest(row, {6: [40, 0, 0, 0, 0, 0, 0], 7: [40] + [0] * 48}, cpu_threshold=0.5, min_share=0.25)
    assert (row.suggested_res, row.still_hot) == (7, True)
    assert row.busiest_child_fraction == {6: 1.0, 7: 1.0}


@pytest.mark.parametrize(
    ("url", "host", "port", "expected"),
    [("redis://10.0.0.1:6379/0", "10.0.0.2", 7000, "redis://10.0.0.2:7000/0"),
     ("rediss://u:secret@a.example:6380/?ssl_cert_reqs=none", "10.0.0.3", 6380,
      "rediss://u:secret@10.0.0.3:6380/?ssl_cert_reqs=none"),
     ("redis://:pw@[::1]:6379", "::2", 7001, "redis://:pw@[::2]:7001")],
)  # fmt: skip
def test_a_cluster_node_is_reached_with_the_urls_scheme_credentials_and_options(
    url, host, port, expected
):
    assert _at(url, host, port) == expected
