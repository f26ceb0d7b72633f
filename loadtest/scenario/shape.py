"""Ramp up, hold, ramp down: the --users and --run-time of the command line are its targets."""

from __future__ import annotations

from locust import LoadTestShape

from loadtest.scenario.plan import plan


class RampHoldRampDown(LoadTestShape):
    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None and self.runner.environment.parsed_options is not None
        opts = self.runner.environment.parsed_options
        users = int(opts.num_users or 10)
        total = float(opts.run_time or 60)
        ramp = float(opts.ramp_s) if opts.ramp_s else max(1.0, 0.2 * total)
        ramp = min(ramp, total / 2)
        down = float(opts.ramp_down_s) if opts.ramp_down_s else None
        elapsed: float = self.get_run_time()  # type: ignore[no-untyped-call]
        return plan(elapsed, users, total, ramp, down)
