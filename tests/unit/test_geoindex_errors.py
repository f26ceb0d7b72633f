"""Every error geoindex raises is a GeoIndexError: bad settings, and Redis failing under
any call (scripts and plain commands alike) at the one Redis edge. No I/O: a fake client
fails on cue."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from redis import exceptions as rx

import geoindex
from dispatch.domain.principals import valid_id
from geoindex import (
    BackendUnavailable,
    GeoIndexError,
    InvalidConfig,
    Position,
    RedisGeoIndex,
    Script,
    ScriptRunner,
    SearchConfig,
    translated,
)
from geoindex.redis_index import DRIVER_UPSERT, REGION_APPLY

NOW = 1_700_000_000_000


@pytest.mark.parametrize(
    "settings",
    [{"region_res": 12, "search_res": 10}, {"search_res": 15}, {"first_rings": 0}],
)
def test_a_bad_search_setting_is_invalid_config(settings: dict[str, int]) -> None:
    with pytest.raises(InvalidConfig) as caught:
        SearchConfig(**settings)
    assert isinstance(caught.value, GeoIndexError) and isinstance(caught.value, ValueError)


OUTAGES: list[BaseException] = [
    rx.ConnectionError("refused"),
    rx.TimeoutError("slow"),
    rx.BusyLoadingError("loading"),
    rx.ClusterDownError("down"),
    rx.MasterDownError("master down"),
    rx.TryAgainError("try again"),
    rx.ReadOnlyError("demoted"),
    rx.ClusterError("TTL exhausted"),
    rx.SlotNotCoveredError("no node"),
    ConnectionResetError(),
    TimeoutError(),  # asyncio's, since Python 3.11
    # What a command gets when the cluster client closes its connection under it.
    AttributeError("'NoneType' object has no attribute 'write'"),
    RuntimeError("unable to perform operation on <TCPTransport closed=True>"),
    # A script touching a key its slot's migration has already moved (as Redis words it).
    rx.ResponseError(
        "Script attempted to access a non local key in a cluster node script: 0b19, on"
        " @user_script:40."
    ),
]


@pytest.mark.parametrize("error", OUTAGES, ids=lambda e: type(e).__name__)
def test_an_outage_inside_a_redis_call_is_backend_unavailable(error: BaseException) -> None:
    with pytest.raises(BackendUnavailable) as caught, translated():
        raise error
    assert caught.value.__cause__ is error


@pytest.mark.parametrize("error", [rx.ResponseError("ERR bad script"), rx.NoScriptError("x")])
def test_a_script_or_call_error_stays_what_it_is(error: BaseException) -> None:
    with pytest.raises(type(error)), translated():
        raise error


class FakeRedis:
    """Answers like Redis, except that `fail_on` finds it gone."""

    def __init__(self, fail_on: str) -> None:
        self.fail_on = fail_on
        self.calls: list[str] = []
        self.loaded: set[str] = set()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        async def command(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if name == self.fail_on:
                raise rx.ConnectionError("gone")
            return self._answer(name, args)

        return command

    def _answer(self, name: str, args: tuple[Any, ...]) -> Any:
        if name == "script_exists":
            return [args[0] in self.loaded]
        if name == "script_load":
            self.loaded.add(_sha(args[0]))
            return _sha(args[0])
        if name == "evalsha":
            if args[0] not in self.loaded:
                raise rx.NoScriptError("NOSCRIPT")
            if args[0] == DRIVER_UPSERT.sha:  # a driver accepted: version 1, new, available
                return [b"1  1 -"]
            if args[0] == REGION_APPLY.sha:  # its one change applied
                return 1
            return [1, b"1", b"", b"1", b"-"]
        if name == "smembers":
            return set()
        if name == "hmget":
            return [None] * 6
        if name == "hget":  # the split list's version: none yet
            return None
        return 1


def _sha(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


@pytest.mark.parametrize(
    ("fail_on", "operation"),
    [
        ("sadd", lambda ix: ix.upsert([Position("d1", 52.52, 13.40, NOW)])),
        ("smembers", lambda ix: ix.expire(NOW)),
        ("hmget", lambda ix: ix.get("d1")),
        ("evalsha", lambda ix: ix.set_available("d1", False)),
        ("script_exists", lambda ix: ix.nearest(52.52, 13.40, 5, 1_000.0)),
    ],
)
async def test_redis_failing_under_any_index_call_is_backend_unavailable(
    fail_on: str, operation: Callable[[RedisGeoIndex], Any]
) -> None:
    index = RedisGeoIndex(FakeRedis(fail_on), clock=lambda: NOW)
    with pytest.raises(BackendUnavailable):
        await operation(index)


async def test_noscript_loads_the_script_and_retries_once() -> None:
    client = FakeRedis(fail_on="")
    knn = Script("knn")
    runner = ScriptRunner(client, [knn])
    await runner.load()
    client.loaded.clear()  # as after a failover to a node that never had it
    assert await runner.call(knn, ["k"], []) == [1, b"1", b"", b"1", b"-"]
    assert client.calls[-3:] == ["script_exists", "script_load", "evalsha"]


def test_a_script_loads_from_any_package_and_equal_sources_are_one_script() -> None:
    reserve = Script("driver_reserve", package="dispatch.adapters.lua")
    assert "HMGET" in reserve.source and reserve == Script(
        "driver_reserve", package="dispatch.adapters.lua"
    )
    assert len({reserve, Script("knn"), Script("knn")}) == 2


@pytest.mark.parametrize(
    "candidate", ["d42", "drv_1.a:b-c", "x" * 64, "x" * 65, "", "a b", "{d1}", "d\n", "é", "d/1"]
)
def test_dispatch_ids_follow_the_library_driver_id_rule(candidate: str) -> None:
    """One rule: the domain (stdlib only) repeats geoindex's, and must agree with it."""
    assert valid_id(candidate) == bool(geoindex.DRIVER_ID_PATTERN.fullmatch(candidate))
