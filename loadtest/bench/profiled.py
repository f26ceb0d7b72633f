"""`dispatch serve` under cProfile, switched by signals, so a benchmark profiles only the
part of a run it means to (not the seeding before it).

    python -m loadtest.bench.profiled OUT.prof serve ...   # the `dispatch` arguments
    kill -USR1 <pid>   # start profiling
    kill -USR2 <pid>   # stop, and write the stats to OUT.prof (pstats format)

Read the file with `python -m pstats OUT.prof` (sort cumtime / tottime, stats 30).
"""

from __future__ import annotations

import cProfile
import signal
import sys
import time
from types import FrameType

from dispatch.entrypoints.cli import main
from loadtest.instances import DispatchInstance


def switch(inst: DispatchInstance, sig: signal.Signals, settle_s: float = 0.2) -> None:
    """Start (SIGUSR1) or stop (SIGUSR2) an instance's profile; the stats are written
    within `settle_s`, before the bench's next phase starts."""
    assert inst.proc is not None
    inst.proc.send_signal(sig)
    time.sleep(settle_s)


def run(out: str, argv: list[str]) -> int:
    prof = cProfile.Profile()

    def start(signum: int, frame: FrameType | None) -> None:
        prof.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        prof.disable()
        prof.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    return main(argv)


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1], sys.argv[2:]))
