"""The benchmark runs end to end and reports exact recall (its figures are not asserted:
performance is shown by the benchmark's own ratios, not by timed tests)."""

import orjson
import pytest

from loadtest.bench import geoindex as bench

pytestmark = pytest.mark.redis


def test_bench_prints_the_documented_json_with_exact_recall(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.main(
        ["--drivers", "3000", "--queries", "60", "--recall-sample", "60", "--redis-url", redis_url]
    )
    out = orjson.loads(capsys.readouterr().out)
    assert out["drivers"] == 3000 and out["queries"] == 60
    assert [row["radius_m"] for row in out["knn"]] == [500, 2000, 5000]
    for row in out["knn"]:
        assert row["k"] == 10 and row["recall"] == 1.0
        assert row["ours_qps"] > 0 and row["geosearch_qps"] > 0
        assert row["ratio"] == pytest.approx(row["ours_qps"] / row["geosearch_qps"])
        assert row["client_us_per_query"]["ours"] > 0
        assert row["client_us_per_query"]["geosearch"] > 0
    assert set(out["upsert"]) >= {"ours_per_s", "geoadd_per_s", "ratio"}
    assert out["memory"]["upsert_per_s"] > 0
    assert [row["radius_m"] for row in out["memory"]["knn"]] == [500, 2000, 5000]
    for row, redis_row in zip(out["memory"]["knn"], out["knn"], strict=True):
        assert row["recall"] == 1.0  # the embedded backend, against the same brute force
        assert row["ratio_vs_kdtree"] == pytest.approx(row["ours_qps"] / row["kdtree_qps"])
        assert row["ratio_vs_redis_backend"] == pytest.approx(
            row["ours_qps"] / redis_row["ours_qps"]
        )
        assert row["ours_qps_taking_updates"] > 0 and row["kdtree_same_answer_qps"] > 0


def test_bench_measures_the_embedded_backend_alone_without_redis(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench.main(["--embedded-only", "--drivers", "3000", "--queries", "60", "--recall-sample", "60"])
    out = orjson.loads(capsys.readouterr().out)
    assert "knn" not in out and "upsert" not in out
    assert [row["radius_m"] for row in out["memory"]["knn"]] == [500, 2000, 5000]
    for row in out["memory"]["knn"]:
        assert row["recall"] == 1.0 and "ratio_vs_redis_backend" not in row
        assert row["ratio_vs_kdtree"] == pytest.approx(row["ours_qps"] / row["kdtree_qps"])
    assert out["memory"]["upsert_per_s"] > 0 and "index_rss_mib" in out["memory"]
