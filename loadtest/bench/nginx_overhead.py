"""1, 2 and 3 instances behind nginx, against one instance alone.

    python -m loadtest.bench.nginx_overhead [--seconds 10] [--connections 64] [--rounds 3]

On a 2-core machine this measures what nginx costs, not how the service scales: every
instance, nginx, Redis and wrk share the same two cores, so more instances cannot add CPU.
Same wrk script (location updates, one HTTP request each) for every side; instances on one
standalone Redis; nginx with one worker and the access log off.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from loadtest.bench import wrk
from loadtest.bench.harness import Servers, machine, measured, median
from loadtest.nginx_proc import NginxProcess
from loadtest.redis_procs import RedisServer, free_port


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.nginx_overhead")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--drivers", type=int, default=3000)
    a = p.parse_args(argv)
    rounds: dict[str, list[dict[str, Any]]] = {}
    with RedisServer(tie_to_parent=True) as redis, Servers() as servers:
        script = servers.location_script("n", a.drivers)
        insts = [
            servers.dispatch(f"bench-{i}", {"DISPATCH_REDIS_URL": redis.url}) for i in (1, 2, 3)
        ]
        proxies = [
            NginxProcess(
                [f"127.0.0.1:{x.port}" for x in insts[:n]],
                free_port(),
                access_log=False,
                tie_to_parent=True,
            )
            for n in (1, 2, 3)
        ]
        for px in proxies:
            px.start()
        try:
            targets = {"direct": insts[0].url} | {
                f"nginx_{n}": px.url for n, px in zip((1, 2, 3), proxies, strict=True)
            }
            for url in targets.values():
                wrk.run(url, script, 2, a.connections)
            nginx_pids = {
                f"nginx_{n}": px.proc.pid
                for n, px in zip((1, 2, 3), proxies, strict=True)
                if px.proc
            }
            for _ in range(a.rounds):
                for name, url in targets.items():
                    pid = nginx_pids.get(name)
                    with measured({"nginx": pid} if pid else {}, []) as m:
                        r = wrk.run(url, script, a.seconds, a.connections)
                    if pid:
                        cpu = m["cpu_s"]["nginx"]
                        r["nginx_cpu_us_per_request"] = round(cpu * 1e6 / max(r["requests"], 1), 1)
                    rounds.setdefault(name, []).append(r)
        finally:
            for px in proxies:
                px.stop()
    rps = {k: median([r["rps"] for r in v]) for k, v in rounds.items()}
    best = {k: max(r["rps"] for r in v) for k, v in rounds.items()}
    p99 = {k: median([r["p99_us"] / 1e3 for r in v]) for k, v in rounds.items()}
    print(json.dumps({
        "bench": "instances_behind_nginx_vs_one_alone",
        "machine": machine(),
        "note": "2 cores shared by all processes: this is nginx's overhead, not scale-out",
        "load": f"wrk -t1 -c{a.connections} -d{a.seconds}s location updates, {a.rounds} rounds",
        "updates_per_s_median": rps,
        "updates_per_s_best": best,
        "p99_ms_median": p99,
        "ratio_to_direct": {k: round(v / rps["direct"], 3) for k, v in rps.items()},
        "rounds": rounds,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
