"""nginx's access log joined with the instances' logs on the request id (nginx's rid=,
the instances' JSON lines' request_id): how many requests the instances wrote about, and
for the gateway's failed requests (5xx) what the instance that saw each one logged."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

_NGINX = re.compile(r'"(?P<req>[^"]*)" (?P<status>\d{3}) .* inst=(?P<inst>\S+) .*rid=(?P<rid>\S+)')
MAX_EXAMPLES = 10


def instance_lines(logs: Iterable[Path]) -> dict[str, list[dict[str, Any]]]:
    """request id -> the JSON log lines written for it, from every instance's log."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in logs:
        if not path.exists():
            continue
        for line in path.read_bytes().splitlines():
            if not line.startswith(b"{"):
                continue  # the start-up banner, or text logs
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("request_id"), str):
                found[record["request_id"]].append(record)
    return found


def join(access_log: Path, logs: Iterable[Path]) -> dict[str, Any]:
    by_id = instance_lines(logs)
    requests = with_lines = 0
    failed: list[dict[str, Any]] = []
    text = access_log.read_text(errors="replace") if access_log.exists() else ""
    for line in text.splitlines():
        m = _NGINX.search(line)
        if not m:
            continue
        requests += 1
        lines = by_id.get(m.group("rid"), [])
        with_lines += bool(lines)
        if m.group("status").startswith("5") and len(failed) < MAX_EXAMPLES:
            failed.append(
                {
                    "request_id": m.group("rid"),
                    "request": m.group("req")[:120],
                    "status": int(m.group("status")),
                    "instance": m.group("inst"),
                    "instance_log": [f"{r.get('level')} {r.get('message')}" for r in lines],
                }
            )
    return {
        "requests": requests,
        "requests_the_instances_logged": with_lines,
        "request_ids_in_instance_logs": len(by_id),
        "5xx_with_instance_log": failed,
    }
