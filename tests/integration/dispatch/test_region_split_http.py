"""The region split endpoints: ops tokens only, input validated before anything changes,
and a change that runs to the end in the background (embedded and Redis backends)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from h3.api import basic_int as h3

from dispatch.entrypoints import appkeys
from dispatch.settings import Settings
from geoindex import BackendUnavailable
from geoindex.split import Layout, SplitConflict
from tests.waiting import eventually

from .conftest import Instance, running

PARENT = h3.int_to_str(h3.latlng_to_cell(52.52, 13.405, 5))
OPS = ("ops", "alice")


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (PARENT, {"res": 8}, 422),  # more than two resolutions finer
        (PARENT, {"res": 4}, 422),
        (PARENT, {"res": "7"}, 422),
        (PARENT, {"res": 7, "extra": 1}, 422),
        (PARENT, {}, 422),
        ("zz", {"res": 7}, 422),
        (h3.int_to_str(h3.latlng_to_cell(52.52, 13.405, 6)), {"res": 7}, 422),  # not a region
    ],
)
async def test_bad_input_is_refused_and_the_list_stays_empty(
    service: Instance, path: str, body: dict[str, Any], status: int
) -> None:
    got, answer, _ = await service.call("PUT", f"/v1/ops/region-split/{path}", OPS, json=body)
    assert got == status and "error" in answer, answer
    _, shown, _ = await service.call("GET", "/v1/ops/region-split", OPS)
    assert shown["parents"] == {}


async def test_only_ops_tokens_read_or_change_the_list(service: Instance) -> None:
    for who in [("driver", "d1"), ("rider", "u1")]:
        got, _, _ = await service.call("GET", "/v1/ops/region-split", who)
        assert got == 403
        got, _, _ = await service.call(
            "PUT", f"/v1/ops/region-split/{PARENT}", who, json={"res": 7}
        )
        assert got == 403
    assert (await service.call("GET", "/v1/ops/region-split"))[0] == 401
    assert (await service.call("PUT", f"/v1/ops/region-split/{PARENT}", OPS, data=b"{"))[0] == 400


async def test_a_split_and_an_unsplit_on_the_embedded_backend(service: Instance) -> None:
    got, answer, _ = await service.call(
        "PUT", f"/v1/ops/region-split/{PARENT}", OPS, json={"res": 7}
    )
    assert got == 202
    assert answer["region_res"] == 5 and answer["version"] >= 1
    shown = (await service.call("GET", "/v1/ops/region-split", OPS))[1]
    assert shown["parents"][PARENT] == {"res": 7, "migrating_from": None, "writes": 7,
                                        "reads": [7]}  # fmt: skip
    got, _, _ = await service.call("PUT", f"/v1/ops/region-split/{PARENT}", OPS, json={"res": 5})
    assert got == 202
    assert (await service.call("GET", "/v1/ops/region-split", OPS))[1]["parents"] == {}


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (BackendUnavailable("redis unavailable: refused"), 503, "backend_unavailable"),
        (SplitConflict(f"{PARENT} was changed by another migration"), 409, "split_in_progress"),
    ],
)
async def test_a_change_failing_before_it_is_recorded_answers_its_error_and_changes_nothing(
    service: Instance,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
    status: int,
    code: str,
) -> None:
    index = service.runner.app[appkeys.RUNTIME].deps.index

    async def refused(parent: str, res: int, settle_s: float | None = None) -> Layout:
        raise failure

    monkeypatch.setattr(index, "split_region", refused)
    got, answer, _ = await service.call(
        "PUT", f"/v1/ops/region-split/{PARENT}", OPS, json={"res": 7}
    )
    assert (got, answer["error"]) == (status, code), answer
    _, shown, _ = await service.call("GET", "/v1/ops/region-split", OPS)
    assert shown["parents"] == {}


@pytest.mark.redis
@pytest.mark.slow
async def test_a_split_on_redis_runs_its_phases_in_the_background(redis_url: str) -> None:
    async with running(replace(Settings(instance_id="t"), redis_url=redis_url)) as inst:
        await inst.fix("d1", 52.52, 13.405)
        got, answer, _ = await inst.call(
            "PUT", f"/v1/ops/region-split/{PARENT}", OPS, json={"res": 6}
        )
        assert got == 202
        # Phase 1 is set before the answer: searches read both resolutions.
        assert answer["parents"][PARENT]["migrating_from"] == 5
        assert answer["parents"][PARENT]["reads"] == [5, 6]
        got, _, _ = await inst.call("PUT", f"/v1/ops/region-split/{PARENT}", OPS, json={"res": 7})
        assert got == 409  # another resolution while this one runs

        async def done() -> dict[str, Any]:
            shown = (await inst.call("GET", "/v1/ops/region-split", OPS))[1]
            assert shown["parents"][PARENT]["migrating_from"] is None, shown
            return shown  # type: ignore[no-any-return]

        await eventually(done, timeout_s=40, interval_s=0.5, what="the split to finish")
        # The driver was re-homed: still found, now from its res-6 region.
        status, near, _ = await inst.call(
            "GET", "/v1/nearby?lat=52.52&lng=13.405&radius_m=500", OPS
        )
        assert status == 200 and len(near["cars"]) == 1, near
