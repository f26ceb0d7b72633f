"""nginx's upstream keepalive (the proxy's connection pool to the instances) on against off.

    python -m loadtest.bench.nginx_keepalive [--seconds 10] [--connections 64] [--rounds 3]

Two nginx nodes from the one template in front of the same two instances on one Redis:
"on" as the stack runs it (`keepalive 64` in the upstream block), "off" the same config
without the upstream keepalive lines, so every proxied request opens (and closes) its own
connection to an instance. The same wrk script (location updates, one HTTP request each,
over keepalive client connections) runs against each in turn, every round, and the
figures are ratios taken within the run: throughput, and CPU per request of nginx and of
the instances (connection set-up costs both sides).
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from loadtest.bench import wrk
from loadtest.bench.harness import Servers, machine, measured, median
from loadtest.nginx_proc import NginxProcess
from loadtest.redis_procs import RedisServer, free_port

_POOL = re.compile(r"^\s*keepalive(_requests|_timeout)? [^;]+;\n", re.MULTILINE)


def without_upstream_keepalive(conf: str) -> str:
    """The upstream block's keepalive lines gone (the server-level `keepalive_timeout` and
    `keepalive_requests`, for client connections, sit outside it and stay)."""
    start = conf.index("upstream dispatch {")
    end = conf.index("}", start)
    block = _POOL.sub("", conf[start:end])
    if "keepalive" in block:
        raise ValueError("the upstream block still has a keepalive line")
    return conf[:start] + block + conf[end:]


def _per_request(cpu_s: float, requests: int) -> float:
    return round(cpu_s * 1e6 / max(requests, 1), 1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench.nginx_keepalive")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--drivers", type=int, default=3000)
    a = p.parse_args(argv)
    rounds: dict[str, list[dict[str, Any]]] = {}
    with RedisServer(tie_to_parent=True) as redis, Servers() as servers:
        script = servers.location_script("k", a.drivers)
        insts = [servers.dispatch(f"ka-{i}", {"DISPATCH_REDIS_URL": redis.url}) for i in (1, 2)]
        upstreams = [f"127.0.0.1:{x.port}" for x in insts]
        nodes = {
            side: NginxProcess(upstreams, free_port(), access_log=False, tie_to_parent=True)
            for side in ("on", "off")
        }
        nodes["off"].conf.write_text(without_upstream_keepalive(nodes["off"].conf.read_text()))
        for node in nodes.values():
            node.start()
        try:
            for node in nodes.values():
                wrk.run(node.url, script, 2, a.connections)  # warm-up
            for _ in range(a.rounds):
                for side, node in nodes.items():
                    assert node.proc is not None
                    pids = {"nginx": node.proc.pid}
                    pids |= {x.instance_id: x.proc.pid for x in insts if x.proc}
                    with measured(pids, []) as m:
                        r = wrk.run(node.url, script, a.seconds, a.connections)
                    cpu = m["cpu_s"]
                    r["nginx_cpu_us_per_request"] = _per_request(cpu["nginx"], r["requests"])
                    r["instances_cpu_us_per_request"] = _per_request(
                        sum(v for k, v in cpu.items() if k != "nginx"), r["requests"]
                    )
                    rounds.setdefault(side, []).append(r)
        finally:
            for node in nodes.values():
                node.stop()

    def med(side: str, key: str) -> float:
        return median([r[key] for r in rounds[side]])

    keys = ("rps", "nginx_cpu_us_per_request", "instances_cpu_us_per_request", "p99_us")
    print(json.dumps({
        "bench": "nginx_upstream_keepalive_on_vs_off",
        "machine": machine(),
        "note": "2 cores shared by wrk, nginx, both instances and Redis",
        "load": f"wrk -t1 -c{a.connections} -d{a.seconds}s location updates, {a.rounds} rounds,"
        " the two sides in turn",
        "median": {side: {k: med(side, k) for k in keys} for side in rounds},
        "on_over_off": {k: round(med("on", k) / med("off", k), 3) for k in keys},
        "rounds": rounds,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
