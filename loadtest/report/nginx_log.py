"""Figures from the stack's nginx access log (the `upstream` log format of the template)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

_LINE = re.compile(r'"(?P<req>[^"]*)" (?P<status>\d{3}) .* ua=(?P<ua>.*?) us=.* inst=(?P<inst>\S+)')


def summarize(log: Path) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    instances: Counter[str] = Counter()
    five_xx: Counter[str] = Counter()
    retried = 0
    total = 0
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        m = _LINE.search(line)
        if not m:
            continue
        total += 1
        status = m.group("status")
        statuses[status] += 1
        instances[m.group("inst")] += 1
        if "," in m.group("ua"):
            retried += 1  # nginx tried more than one instance for this request
        if status.startswith("5"):
            parts = m.group("req").split(" ")
            five_xx[" ".join(parts[:2])[:120]] += 1
    return {
        "requests": total,
        "by_status": dict(sorted(statuses.items())),
        "by_instance": dict(sorted(instances.items())),
        "5xx": sum(v for k, v in statuses.items() if k.startswith("5")),
        "5xx_examples": dict(five_xx.most_common(10)),
        "passed_to_another_instance": retried,
    }
