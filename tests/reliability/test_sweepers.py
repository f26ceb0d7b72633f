"""The background loops (timer sweeper, index sweeper) outlive any one failure. During a
Redis Cluster failover redis-py fails commands with whatever a connection closed under
them raises (AttributeError, RuntimeError), not only with its own errors; a loop that
died of one would leave its instance without offer timeouts or leases until a restart."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from dispatch.bootstrap import bootstrap
from dispatch.service_layer.deadlines import run_sweeper
from dispatch.service_layer.index_sweep import run_index_sweeper
from dispatch.settings import Settings
from tests.waiting import eventually


class FailsOnce:
    """Wraps a port; its `method` fails once, on the second call, with `error`."""

    def __init__(self, inner: Any, method: str, error: BaseException) -> None:
        self.inner, self.method, self.error, self.calls = inner, method, error, 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.inner, name)
        if name != self.method:
            return real

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == 2:
                raise self.error
            return await real(*args, **kwargs)

        return call


ERRORS = [
    AttributeError("'NoneType' object has no attribute 'writelines'"),
    RuntimeError("unable to perform operation on <TCPTransport closed=True>"),
    ValueError("a bug in a handler"),
]


SWEEPERS = {  # name: (the dependency it calls, the call that fails once, the loop)
    "timer": ("deadlines", "claim", run_sweeper),
    "index": ("index", "expire", run_index_sweeper),
}


@pytest.mark.parametrize("sweeper", SWEEPERS)
@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
async def test_each_sweeper_survives_any_error(sweeper: str, error: BaseException) -> None:
    dependency, method, loop = SWEEPERS[sweeper]
    async with bootstrap(Settings()) as runtime:
        flaky = FailsOnce(getattr(runtime.deps, dependency), method, error)
        swapped: dict[str, Any] = {dependency: flaky}
        deps = dataclasses.replace(runtime.deps, **swapped)
        task = asyncio.create_task(loop(deps, 0.01))

        def swept_past_the_failure_or_died() -> bool:
            return flaky.calls > 5 or task.done()

        await eventually(swept_past_the_failure_or_died, what=f"a 6th {method} call or the end")
        assert not task.done(), task.exception()
        assert flaky.calls > 5  # it kept sweeping after the failure
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
