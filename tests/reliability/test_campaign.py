"""A short failover campaign (python -m loadtest.campaign): each fault kind once, under
ride and location load through two instances on a 6-node Redis Cluster, with durable
writes on. The history checker must find no double booking, no acknowledged write lost,
no ride stuck and no stale-fix answer the history cannot explain. The long runs (30
faults, durable writes off and on) are in docs/reliability.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.campaign import faults
from loadtest.campaign.run import main

from .conftest import record_figure

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_a_short_campaign_finds_nothing_wrong(tmp_path: Path) -> None:
    result = main(
        ["--faults", str(len(faults.KINDS)), "--cycle", "--seed", "5", "--durable", "1:200",
         "--gap-s", "1.5", "--out", str(tmp_path)]
    )  # fmt: skip
    rows = result["by_fault_kind"]
    record_figure(
        "campaign_short",
        run_s=result["run_s"],
        operations=result["operations"],
        by_fault_kind=rows,
    )
    assert sorted(k for k in rows if k != "none") == sorted(faults.KINDS)
    assert result["double_bookings"] == []
    assert result["acknowledged_writes_lost"] == []
    assert result["stuck_rides"] == []
    assert result["stale_fixes_unexplained"] == 0
    for kind, row in rows.items():
        assert row["operations"] > 0, kind
        # Failures are clean: a 503 (or no answer from a killed instance), never a 500.
        assert not any(s.startswith("500") for s in row["errors_by_status"]), (kind, row)
    assert (tmp_path / "history.jsonl").stat().st_size > 0
