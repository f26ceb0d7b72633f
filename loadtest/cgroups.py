"""CPU quotas for benchmark processes: one cgroup per process, cgroup v1 `cpu` or v2 `cpu.max`.

A quota makes a process, not the machine, the bottleneck: an instance held to 0.2 of a
core saturates at the same rate whatever its neighbours do, so N of them must carry N
times the load if the design scales. The groups are made by the bench and removed at the
end (their processes moved back to the root group first, since a group with members
cannot be removed).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
MIN_QUOTA_US = 1_000  # the kernel refuses a smaller CFS quota
SLICE_US = 5_000  # the kernel's default CFS bandwidth slice


class CgroupsUnavailable(RuntimeError):
    """Neither a writable v1 `cpu` hierarchy nor a v2 one with the cpu controller."""


@dataclass(frozen=True)
class Quota:
    cores: float  # 0.2: a fifth of one core
    # None: the shortest period from 10 ms up whose quota is at least the kernel's
    # bandwidth slice (5 ms, /proc/sys/kernel/sched_cfs_bandwidth_slice_us). Short periods
    # spread the budget finely (with 100 ms, a group that spends its 20 ms early waits
    # 80 ms, and that wait would set the p99), but runtime is handed out in slices: a
    # Redis held to 1 ms per 10 ms was throttled in 78 % of its periods while it used a
    # third of its quota.
    period_us: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.cores <= 64:
            raise ValueError(f"a quota is a positive number of cores, not {self.cores!r}")
        if self.period_us is None:
            period = math.ceil(SLICE_US / self.cores)
            object.__setattr__(self, "period_us", min(1_000_000, max(10_000, period)))
        if not 1_000 <= self.period <= 1_000_000:
            raise ValueError("the period must be from 1 ms to 1 s")

    @property
    def period(self) -> int:
        assert self.period_us is not None
        return self.period_us

    @property
    def quota_us(self) -> int:
        return max(MIN_QUOTA_US, round(self.cores * self.period))

    def files(self, version: str) -> dict[str, str]:
        """What to write into the group, in order (v1 checks quota against period)."""
        if version == "v1":
            return {
                "cpu.cfs_period_us": str(self.period),
                "cpu.cfs_quota_us": str(self.quota_us),
            }
        return {"cpu.max": f"{self.quota_us} {self.period}"}


def pick_version(v1_quota_writable: bool, v2_controllers: str | None) -> str | None:
    """v1 where its `cpu` hierarchy is mounted and writable (a hybrid host also has a v2
    mount, usually without the cpu controller); else v2 if its root offers `cpu`."""
    if v1_quota_writable:
        return "v1"
    if v2_controllers is not None and "cpu" in v2_controllers.split():
        return "v2"
    return None


def parse_cpu_stat(text: str) -> dict[str, int]:
    """cpu.stat as numbers: v1 has nr_periods, nr_throttled, throttled_time (ns); v2 has
    usage_usec, nr_periods, nr_throttled, throttled_usec."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def throttled(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """Share of the periods in which the group ran out of quota, and the time it waited."""
    periods = after.get("nr_periods", 0) - before.get("nr_periods", 0)
    hits = after.get("nr_throttled", 0) - before.get("nr_throttled", 0)
    if "throttled_usec" in after:
        waited = (after["throttled_usec"] - before.get("throttled_usec", 0)) / 1e6
    else:
        waited = (after.get("throttled_time", 0) - before.get("throttled_time", 0)) / 1e9
    return {
        "periods_throttled_share": round(hits / periods, 3) if periods else 0.0,
        "throttled_s": round(waited, 3),
    }


def detect(root: Path = ROOT) -> tuple[str, Path]:
    """(version, the hierarchy's folder) or CgroupsUnavailable saying why."""
    v1 = root / "cpu"
    v1_ok = (v1 / "cpu.cfs_quota_us").is_file() and os.access(v1, os.W_OK)
    controllers = root / "cgroup.controllers"
    v2_text = controllers.read_text() if controllers.is_file() else None
    version = pick_version(v1_ok, v2_text)
    if version == "v1":
        return "v1", v1
    if version == "v2" and os.access(root, os.W_OK):
        return "v2", root
    raise CgroupsUnavailable(
        f"no CPU cgroup to use under {root}: neither a writable cgroup v1 'cpu' hierarchy "
        "nor cgroup v2 with the cpu controller (run as root on a host that has one)"
    )


class CpuGroups:
    """The bench's groups, named <prefix>-<pid of the bench>-<name>; all removed on exit."""

    def __init__(self, prefix: str = "dispatch-bench", root: Path = ROOT) -> None:
        self.version, self.base = detect(root)
        self.prefix = f"{prefix}-{os.getpid()}"
        self.groups: dict[str, Path] = {}
        if self.version == "v2":  # children of the root get the cpu controller only if asked
            (self.base / "cgroup.subtree_control").write_text("+cpu")

    def create(self, name: str, quota: Quota) -> Path:
        group = self.base / f"{self.prefix}-{name}"
        group.mkdir(exist_ok=True)
        self.groups[name] = group
        for file, value in quota.files(self.version).items():
            (group / file).write_text(value)
        return group

    def add(self, name: str, pid: int) -> None:
        """The whole process (all its threads; children it starts later follow)."""
        (self.groups[name] / "cgroup.procs").write_text(str(pid))

    def stat(self, name: str) -> dict[str, int]:
        return parse_cpu_stat((self.groups[name] / "cpu.stat").read_text())

    def close(self) -> None:
        for group in self.groups.values():
            try:
                for pid in (group / "cgroup.procs").read_text().split():
                    try:
                        (self.base / "cgroup.procs").write_text(pid)
                    except OSError:
                        pass  # it has exited meanwhile
                group.rmdir()
            except FileNotFoundError:
                pass
        self.groups.clear()

    def __enter__(self) -> CpuGroups:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
