"""The load report's readers: Prometheus text, nginx's log, the timeline, locust's CSV."""

from __future__ import annotations

from pathlib import Path

from loadtest.report import chart, locust_csv, nginx_log, prom
from loadtest.scenario.timeline import Timeline, bucket_ms, percentile


def test_prometheus_samples_are_read_and_compared() -> None:
    before = prom.parse('# HELP x\nreq_total{route="a"} 3\nup 1\nbad line\n')
    after = prom.parse('req_total{route="a"} 10\nup 1\n')
    assert before == {'req_total{route="a"}': 3.0, "up": 1.0}
    assert prom.deltas(before, after) == {'req_total{route="a"}': 7.0}


def test_nginx_log_counts_statuses_instances_and_retries(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    fmt = (
        '127.0.0.1 [x] "{req} HTTP/1.1" {st} 10 rt=0.001 ua={ua} us={st} uct=0 uht=0 '
        "urt=0 inst={inst} idem=-"
    )
    log.write_text(
        "\n".join(
            [
                fmt.format(req="GET /a", st=200, ua="127.0.0.1:1", inst="i1"),
                fmt.format(req="POST /v1/rides", st=502, ua="127.0.0.1:1, 127.0.0.1:2", inst="-"),
                fmt.format(req="GET /b", st=200, ua="127.0.0.1:2", inst="i2"),
            ]
        )
    )
    s = nginx_log.summarize(log)
    assert s["requests"] == 3
    assert s["5xx"] == 1 and s["5xx_examples"] == {"POST /v1/rides": 1}
    assert s["by_instance"] == {"-": 1, "i1": 1, "i2": 1}
    assert s["passed_to_another_instance"] == 1


def test_latency_buckets_keep_two_significant_digits() -> None:
    assert [bucket_ms(x) for x in (0.4, 42.0, 123.0, 1_260.0)] == [0, 42, 120, 1_300]


def test_timeline_merges_workers_and_leaves_metrics_out() -> None:
    a, b = Timeline(), Timeline()
    a.add(100.2, "POST", 10.0, False)
    a.add(100.7, "METRIC", 5_000.0, False)
    b.add(100.5, "GET", 30.0, True)
    b.add(101.0, "GET", 20.0, False)
    master = Timeline()
    master.merge(a.drain())
    master.merge(b.drain())
    assert master.to_json() == {"100": [2, 1, {"10": 1, "30": 1}], "101": [1, 0, {"20": 1}]}
    assert a.drain() == {}


def test_percentile_of_a_histogram() -> None:
    hist = {10: 50, 20: 45, 100: 5}
    assert percentile(hist, 0.5) == 10
    assert percentile(hist, 0.95) == 20
    assert percentile(hist, 0.99) == 100
    assert percentile({}, 0.5) == 0.0


def test_chart_series_windows_throughput_and_percentiles() -> None:
    timeline = {"100": [4, 0, {"10": 4}], "101": [2, 2, {"50": 2}], "102": [6, 0, {"5": 6}]}
    s = chart.series(timeline, window_s=2)
    assert s["t"] == [0, 2]
    assert s["rps"] == [3.0, 3.0]
    assert s["fps"] == [1.0, 0.0]
    assert s["p99"] == [50.0, 5.0]


def test_chart_is_drawn(tmp_path: Path) -> None:
    png = tmp_path / "c.png"
    chart.draw({"1": [3, 0, {"12": 3}], "2": [5, 1, {"15": 5}]}, png, "t")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_locust_csv_summary_separates_requests_from_scenario_metrics() -> None:
    def row(typ: str, name: str, n: int, f: int = 0) -> dict[str, str]:
        return {
            "Type": typ, "Name": name, "Request Count": str(n), "Failure Count": str(f),
            "Requests/s": "1.0", "50%": "10", "95%": "20", "99%": "30",
            "Max Response Time": "40",
        }  # fmt: skip

    rows = [
        row("POST", "/v1/rides", 100, 1),
        row("GET", "/v1/rides/[id]", 300),
        row("METRIC", "match latency", 80),
        row("METRIC", "ride outcome: offered", 80),
        row("METRIC", "ride outcome: no_driver", 20),
        row("METRIC", "idempotent retry", 1, 1),
        row("", "Aggregated", 581, 2),
    ]
    s = locust_csv.summarize(rows)
    assert s["requests"] == 400 and s["failures"] == 1
    assert s["no_driver_rate"] == 0.2
    assert s["match_latency_ms"]["p99_ms"] == 30
    assert s["offer_to_accept_ms"] is None
    assert s["scenario_failures"] == {"idempotent retry": 1}
