"""Scale-out under CPU quotas: 1 to 4 instances behind nginx, and 1 against 3 Redis masters.

    python -m loadtest.bench.scaleout [--counts 1,2,3,4] [--quota 0.1] [--redis-quota 0.05]
                                      [--rounds 3] [--tiers service,data] [--plot-dir docs]

Each dispatch instance runs in a CPU cgroup of its own held to --quota of a core (cgroup
v1 `cpu` or v2 `cpu.max`, made here and removed at the end, Ctrl-C included), so the
instance and not the machine is the bottleneck; nginx, Redis and the load processes run
outside the quotas. Needs root.

Service tier: a Redis Cluster (3 masters + 3 replicas) and 4 instances from the stack
launcher; for each N an nginx of the stack's template in front of the first N, every N in
turn for --rounds rounds (medians). Closed-loop load to saturation, each workload alone:
WebSocket location fixes (sockets with fixes in flight), then ride requests (workers that
send the next when the last is answered; after the window each rider cancels its offered
ride, unmeasured, so every step's rides find the same free fleet). Efficiency =
throughput(N) / (N x throughput(1)). Targets: >= 0.9 at 2, >= 0.8 at 4.

Data tier: the geo index straight on a Redis Cluster (no service), each master in a
cgroup of --redis-quota: index writes and k-NN (k 10 within 2 km) over a 150 km square
(about 125 regions at resolution 5), 1 master against 3 masters. Target: >= 2.5x.

Every step says whether each group used its whole quota (else the machine, short of CPU,
set the rate), the CPU per operation and the load processes' own CPU. Where no CPU cgroup
can be used the bench says so and exits 2: it reports no figure it did not measure.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from loadtest.bench.harness import cpu_seconds, loadgen, machine, median
from loadtest.cgroups import CgroupsUnavailable, CpuGroups, Quota, throttled
from loadtest.nginx_proc import NginxProcess
from loadtest.redis_procs import REDIS_CLI, RedisCluster, RedisNode, free_cluster_port, free_port
from loadtest.stack import Stack, StackOptions

TARGETS = {2: 0.9, 4: 0.8}
DATA_TARGET = 2.5
# Seeded drivers stay online without a refresh and offers do not lapse within the run (so
# a ride is one request's work); one socket is one driver sending far above a phone's rate.
SERVICE_ENV = {
    "DISPATCH_MATCH_WINDOW_MS": "0",  # the figures in docs/benchmarks.md are immediate mode's
    "DISPATCH_DRIVER_TTL_S": "3600",
    "DISPATCH_OFFER_TIMEOUT_S": "600",
    "DISPATCH_DRIVER_RATE_PER_S": "1000000",
    "DISPATCH_DRIVER_RATE_BURST": "1000000",
}


def efficiency(throughput: dict[int, float]) -> dict[int, float]:
    """throughput(N) / (N x throughput(1)) for every N measured."""
    one = throughput.get(1)
    if not one:
        raise ValueError("efficiency needs a throughput at 1 that is above zero")
    return {n: round(t / (n * one), 3) for n, t in sorted(throughput.items())}


def percentile(latencies: list[float], q: float) -> float | None:
    return round(float(np.percentile(latencies, q)), 2) if latencies else None


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: groups removed


class Meter:
    """Runs load processes and measures what the watched processes and groups spent in
    the window the load processes count (after their warm-up)."""

    def __init__(self, a: argparse.Namespace, groups: CpuGroups, tmp: Path) -> None:
        self.a, self.groups, self.tmp = a, groups, tmp

    def run(self, mode: str, url: str, args: list[str], watch: dict[str, int],
            grouped: dict[str, float]) -> dict[str, Any]:  # fmt: skip
        a = self.a
        cmd = [sys.executable, "-m", "loadtest.bench.scaleout_load", mode, "--url", url,
               "--warmup", str(a.warmup), "--seconds", str(a.seconds)]  # fmt: skip
        # Each load process gets drivers (or riders) of its own unless told otherwise.
        own = "--prefix" not in args
        run = time.time_ns()
        files = [self.tmp / f"{mode}-{run}-{i}.json" for i in range(a.load_procs)]
        loads = [
            subprocess.Popen(
                [*cmd, *args, "--out", str(f), *(["--prefix", f"{mode}{run}p{i}-"] if own else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            for i, f in enumerate(files)
        ]  # fmt: skip
        try:
            time.sleep(a.warmup)
            cpu0 = {k: cpu_seconds(p) for k, p in watch.items()}
            stat0 = {g: self.groups.stat(g) for g in grouped}
            time.sleep(a.seconds)
            cpu = {k: round((cpu_seconds(p) - cpu0[k]) / a.seconds, 3) for k, p in watch.items()}
            throttling = {g: throttled(stat0[g], self.groups.stat(g)) for g in grouped}
            outs = []
            for proc, file in zip(loads, files, strict=True):
                _, err = proc.communicate(timeout=a.seconds + 120)
                if proc.returncode != 0:
                    raise RuntimeError(f"load process {mode} failed: {err[-2000:]}")
                outs.append(json.loads(file.read_text()))
                file.unlink()
        finally:  # interrupted: the load goes too
            for proc in loads:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        latencies = [x for o in outs for x in o["latencies_ms"]]
        statuses: dict[str, int] = {}
        cleanup: dict[str, int] = {}  # the rides' cancels after the window
        for o in outs:
            for k, v in o["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
            for k, v in o.get("cleanup", {}).items():
                cleanup[k] = cleanup.get(k, 0) + v
        per_s = len(latencies) / a.seconds
        grouped_cpu = sum(cpu[g] for g in grouped)
        return {
            "per_s": round(per_s, 1),
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "statuses": statuses,
            **({"cleanup": cleanup} if cleanup else {}),
            # Cores used over the window; a group held by its quota sits at the quota.
            "cpu_cores": cpu,
            "quota_bound": quota_bound({g: cpu[g] for g in grouped}, grouped),
            "grouped_cpu_ms_per_op": round(grouped_cpu * 1e3 / per_s, 4) if per_s else None,
            "load_process_cpu_cores": [round(o["cpu_s"] / a.seconds, 3) for o in outs],
            "throttling": throttling,
        }


def quota_bound(used: dict[str, float], quotas: dict[str, float], share: float = 0.85) -> bool:
    """Whether every group used (nearly) its whole quota: then the quota, not a machine
    short of CPU, set the rate. CPU comes from /proc in 10 ms ticks, hence the margin."""
    return all(used[g] >= share * q for g, q in quotas.items())


def _seed(stack: Stack, drivers: int) -> dict[str, Any]:
    """Drivers for the rides to find, before the quotas (set-up, not measured). Every
    batch must be taken: a ride that finds nobody is cheaper and would flatter the rate."""
    for _ in range(3):
        r = loadgen("seed", stack.url, stack.jwt_secret, "--drivers", str(drivers),
                    "--batch", "1000", "-c", "2", "--prefix", "s")  # fmt: skip
        if set(r["statuses"]) == {"ok"}:
            return r
        time.sleep(1)
    tail = stack.instances[0].log_tail(5)
    raise RuntimeError(f"seeding the drivers failed: {r['statuses']}; dispatch-1 says:\n{tail}")


def service_tier(a: argparse.Namespace, meter: Meter, counts: list[int]) -> dict[str, Any]:
    quota = Quota(a.quota, a.period_us)
    rounds: dict[str, dict[int, list[Any]]] = {"ws": {n: [] for n in counts},
                                               "rides": {n: [] for n in counts}}  # fmt: skip
    options = StackOptions(instances=max(counts), access_log=False, tie_to_parent=True,
                           extra_env=SERVICE_ENV)  # fmt: skip
    with Stack(options) as stack:
        seeded = _seed(stack, a.drivers)
        for inst in stack.instances:
            assert inst.proc is not None
            meter.groups.create(inst.instance_id, quota)
            meter.groups.add(inst.instance_id, inst.proc.pid)
        assert stack.redis is not None
        redis_pids = {f"redis_{n.port}": n.proc.pid for n in stack.redis.nodes if n.proc}
        # Round by round, every N in turn, so a noisy neighbour hits every N alike.
        for r in range(a.rounds):
            for n in counts:
                step = _service_step(a, meter, stack, n, redis_pids)
                for workload, result in step.items():
                    rounds[workload][n].append(result)
                print(f"service tier, round {r + 1}, {n} instance(s): "
                      + ", ".join(f"{w} {v['per_s']}/s" for w, v in step.items()),
                      file=sys.stderr)  # fmt: skip
    out: dict[str, Any] = {"quota_cores": a.quota, "period_us": quota.period,
                           "seeded_drivers": a.drivers, "seed": seeded}  # fmt: skip
    for workload, by_n in rounds.items():
        rate = {n: median([r["per_s"] for r in rs]) for n, rs in by_n.items()}
        eff = efficiency(rate)
        out[workload] = {
            "per_s_median": rate,
            "efficiency": eff,
            "targets": {n: {"target": t, "met": eff[n] >= t} for n, t in TARGETS.items()
                        if n in eff},
            "cpu_ms_per_op_median": {n: median([r["grouped_cpu_ms_per_op"] for r in rs])
                                     for n, rs in by_n.items()},
            # A round in which some instance was short of its quota tells of the machine,
            # not of the design: counted, not hidden.
            "rounds_quota_bound": {n: sum(r["quota_bound"] for r in rs) for n, rs in by_n.items()},
            "rounds": by_n,
        }  # fmt: skip
    return out


def _service_step(a: argparse.Namespace, meter: Meter, stack: Stack, n: int,
                  redis_pids: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    """Both workloads through an nginx in front of the first n instances."""
    serving = stack.instances[:n]
    upstreams = [f"127.0.0.1:{i.port}" for i in serving]
    with NginxProcess(upstreams, free_port(), access_log=False, tie_to_parent=True) as ng:
        assert ng.proc is not None
        watch = {i.instance_id: i.proc.pid for i in serving if i.proc}
        watch |= {"nginx": ng.proc.pid, **redis_pids}
        grouped = {i.instance_id: a.quota for i in serving}
        sockets = max(1, a.sockets * n // a.load_procs)
        workers = max(1, a.ride_workers * n // a.load_procs)
        secret = [f"--secret={stack.jwt_secret}"]  # a secret may start with "-"
        return {
            "ws": meter.run("ws", ng.url, [*secret, "--sockets", str(sockets),
                                           "--window", str(a.window)], watch, grouped),
            "rides": meter.run("rides", ng.url, [*secret, "-c", str(workers)], watch, grouped),
        }  # fmt: skip


class OneMasterCluster:
    """A Redis Cluster of one master holding every slot: the same client and scripts as
    three masters, so the comparison is the masters and nothing else."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.node = RedisNode(free_cluster_port(), workdir, cluster=True, tie_to_parent=True)
        self.nodes = [self.node]

    def __enter__(self) -> OneMasterCluster:
        self.node.start()
        subprocess.run(
            [REDIS_CLI, "-p", str(self.node.port), "CLUSTER", "ADDSLOTSRANGE", "0", "16383"],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = subprocess.run(
                [REDIS_CLI, "-p", str(self.node.port), "CLUSTER", "INFO"],
                capture_output=True,
                text=True,
            ).stdout
            if "cluster_state:ok" in info:
                return self
            time.sleep(0.1)
        raise RuntimeError("a one-master cluster did not reach cluster_state:ok")

    def __exit__(self, *exc: object) -> None:
        self.node.stop(sig_kill=True)

    @property
    def url(self) -> str:
        return self.node.url


def _regions(nodes: list[RedisNode]) -> list[int]:
    """How many index regions each master holds: the spread that bounds the 3/1 ratio."""
    counts = []
    for node in nodes:
        cmd = [REDIS_CLI, "-p", str(node.port), "--scan", "--pattern", "gi:{r*}:geo"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
        counts.append(len(out.split()))
    return counts


def data_tier(a: argparse.Namespace, meter: Meter, tmp: Path) -> dict[str, Any]:
    quota = Quota(a.redis_quota, a.period_us)
    by_masters: dict[int, Any] = {}
    for masters in (1, 3):
        cluster: Any = (
            OneMasterCluster(tmp / "one") if masters == 1
            else RedisCluster(nodes=3, replicas=0, tie_to_parent=True)
        )  # fmt: skip
        with cluster:
            common = ["--drivers", str(a.index_drivers), "--prefix", "ix",
                      "--region-res", str(a.region_res)]  # fmt: skip
            subprocess.run([sys.executable, "-m", "loadtest.bench.scaleout_load", "seed-index",
                            "--url", cluster.url, *common],
                           check=True, capture_output=True, timeout=900)  # fmt: skip
            watch = {}
            for node in cluster.nodes:
                name = f"redis-{masters}m-{node.port}"
                meter.groups.create(name, quota)
                meter.groups.add(name, node.proc.pid)
                watch[name] = node.proc.pid
            grouped = {name: a.redis_quota for name in watch}
            writes = meter.run("index-writes", cluster.url,
                               [*common, "-c", str(a.index_workers)], watch, grouped)  # fmt: skip
            knn = meter.run("knn", cluster.url, [*common, "-c", str(a.index_workers * 2)],
                            watch, grouped)  # fmt: skip
            by_masters[masters] = {"index_writes": writes, "knn": knn,
                                   "regions_per_master": _regions(cluster.nodes)}  # fmt: skip
            print(f"data tier, {masters} master(s): writes {writes['per_s']}/s, "
                  f"knn {knn['per_s']}/s", file=sys.stderr, flush=True)  # fmt: skip
    ratios = {
        w: round(by_masters[3][w]["per_s"] / max(by_masters[1][w]["per_s"], 1e-9), 2)
        for w in ("index_writes", "knn")
    }
    return {
        "quota_cores_per_master": a.redis_quota,
        "period_us": quota.period,
        "index_drivers": a.index_drivers,
        "region_res": a.region_res,
        "by_masters": by_masters,
        "ratio_3_to_1": ratios,
        "target": DATA_TARGET,
        "met": {w: r >= DATA_TARGET for w, r in ratios.items()},
        "every_step_quota_bound": all(
            by_masters[m][w]["quota_bound"] for m in by_masters for w in ratios
        ),
    }


def plot(result: dict[str, Any], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    if "service" in result:
        s = result["service"]
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=80)
        for workload, label in (("ws", "WebSocket fixes"), ("rides", "ride requests")):
            eff = s[workload]["efficiency"]
            ns = sorted(int(n) for n in eff)
            ax.plot(ns, [eff[n] for n in ns], marker="o", label=label)
        ax.axhline(0.8, color="grey", lw=0.8, ls="--")
        ax.axhline(0.9, color="grey", lw=0.8, ls=":")
        ax.set(
            xlabel="instances",
            ylabel="throughput(N) / (N x throughput(1))",
            ylim=(0, 1.2),
            title=f"Service scale-out, {s['quota_cores']} core each",
        )
        ax.set_xticks(ns)
        ax.legend(loc="lower left", fontsize=8)
        fig.tight_layout()
        path = out_dir / "scaleout-service.png"
        fig.savefig(path)
        written.append(str(path))
    if "data" in result:
        d = result["data"]
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=80)
        workloads = ("index_writes", "knn")
        x = np.arange(len(workloads))
        for i, m in enumerate((1, 3)):
            rates = [d["by_masters"][m][w]["per_s"] for w in workloads]
            ax.bar(x + (i - 0.5) * 0.38, rates, 0.38, label=f"{m} master(s)")
        ax.set_xticks(x, ["index writes (fixes/s)", "k-NN (queries/s)"])
        ax.set(
            title=f"Data tier, {d['quota_cores_per_master']} core per master; 3/1: "
            + ", ".join(f"{r}x" for r in d["ratio_3_to_1"].values())
        )
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / "scaleout-data.png"
        fig.savefig(path)
        written.append(str(path))
    plt.close("all")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench.scaleout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--counts", default="1,2,3,4", help="instance counts (1 must be among them)")
    p.add_argument("--tiers", default="service,data")
    p.add_argument("--quota", type=float, default=0.1, help="cores per instance")
    p.add_argument("--redis-quota", type=float, default=0.05, help="cores per Redis master")
    p.add_argument(
        "--period-us", type=int, default=None,
        help="the CFS period (default: 10 ms, or longer so the quota is at least 5 ms)",
    )  # fmt: skip
    p.add_argument("--seconds", type=float, default=10.0, help="measured, per step")
    p.add_argument("--rounds", type=int, default=3, help="service tier: rounds of every N")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--load-procs", type=int, default=2, help="load processes per step")
    p.add_argument("--sockets", type=int, default=25, help="driver sockets per instance")
    p.add_argument("--window", type=int, default=2, help="fixes in flight per socket")
    p.add_argument("--ride-workers", type=int, default=6, help="ride workers per instance")
    p.add_argument("--drivers", type=int, default=30_000, help="seeded for the rides")
    p.add_argument("--index-drivers", type=int, default=100_000, help="data tier")
    p.add_argument("--index-workers", type=int, default=4, help="per load process")
    p.add_argument("--region-res", type=int, default=5, help="data tier: the index's regions")
    p.add_argument("--plot-dir", type=Path, default=None, help="write the PNGs here")
    a = p.parse_args(argv)
    counts = sorted({int(c) for c in a.counts.split(",")})
    if 1 not in counts:
        p.error("--counts must include 1: efficiency is measured against one instance")
    tiers = set(a.tiers.split(","))
    try:
        groups = CpuGroups()
    except (CgroupsUnavailable, OSError) as e:
        print(json.dumps({"bench": "scaleout", "error": str(e)}), file=sys.stderr)
        return 2
    # Explicitly: a bench started from a script's background job inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    result: dict[str, Any] = {"bench": "scaleout", "cgroup": groups.version}
    failed = False
    with groups, tempfile.TemporaryDirectory(prefix="scaleout-") as tmp:
        meter = Meter(a, groups, Path(tmp))
        for tier in ("service", "data"):
            if tier not in tiers:
                continue
            try:  # a tier that fails says why; the other tier's figures still count
                if tier == "service":
                    result[tier] = service_tier(a, meter, counts)
                else:
                    result[tier] = data_tier(a, meter, Path(tmp))
            except Exception as e:
                failed = True
                result[f"{tier}_error"] = f"{type(e).__name__}: {e}"
    result["machine"] = machine()
    if a.plot_dir is not None:
        try:  # a plot that fails loses no figure
            result["plots"] = plot(result, a.plot_dir)
        except Exception as e:
            failed = True
            result["plots_error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(result, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
