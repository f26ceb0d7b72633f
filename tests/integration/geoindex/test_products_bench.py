"""The products benchmark runs end to end and reports exact recall for both product
searches (its figures are not asserted: the benchmark's own ratios show performance)."""

import orjson
import pytest

from loadtest.bench import products as bench

pytestmark = pytest.mark.redis


def test_products_bench_prints_its_json_with_exact_recall(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.main(
        [
            "--drivers", "3000", "--queries", "40", "--recall-sample", "40",
            "--upsert-drivers", "600", "--redis-url", redis_url,
        ]
    )  # fmt: skip
    out = orjson.loads(capsys.readouterr().out)
    assert [row["radius_m"] for row in out["knn"]] == [500, 2000, 5000]
    for row in out["knn"]:
        # GEOSEARCH measures its own quantised positions: a driver at the very edge of
        # the radius may fall either way.
        assert row["recall"] == 1.0 and row["geosearch_filtered_recall"] >= 0.95
        assert row["rare_vs_all"] == pytest.approx(row["rare_qps"] / row["all_drivers_qps"])
    upsert = out["upsert"]["products_per_driver"]
    assert set(upsert) == {"none", "1", "2", "3"} and upsert["1"]["cost_vs_single"] == 1.0
