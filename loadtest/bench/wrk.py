"""wrk (Debian's package) driving location updates: distinct drivers, increasing seq and ts.

Each wrk thread owns a disjoint set of drivers so a driver's fixes stay in order; the
tokens are written into the generated Lua script. wrk's done() prints one JSON line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

WRK = shutil.which("wrk") or "/usr/bin/wrk"

_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_usec; } wrk_timeval;
int gettimeofday(wrk_timeval *tv, void *tz);
]]
local tv = ffi.new("wrk_timeval")
local function now_ms()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) * 1000 + math.floor(tonumber(tv.tv_usec) / 1000)
end

local ids = {IDS}
local tokens = {TOKENS}
local thread_no = 0

function setup(thread)
  thread:set("tid", thread_no)
  thread_no = thread_no + 1
end

local n = 0
local seq0 = 0
local mine = {}

function init(args)
  local nthreads = tonumber(args[1])
  for i = tid + 1, #ids, nthreads do
    mine[#mine + 1] = i
  end
  math.randomseed(tid + 1)
  -- Microseconds since the epoch: every run's seqs are above the last run's for the same
  -- drivers (warm-up, then rounds), and still exact in a double.
  seq0 = now_ms() * 1000
end

function request()
  n = n + 1
  local i = mine[(n % #mine) + 1]
  local body = string.format('{"lat":%.6f,"lng":%.6f,"ts":%d,"seq":%d}',
    52.52 + (math.random() - 0.5) * 0.12, 13.405 + (math.random() - 0.5) * 0.2, now_ms(), seq0 + n)
  return wrk.format("POST", "/v1/drivers/" .. ids[i] .. "/location",
    {["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"status_errors":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""


def _lua_list(items: list[str]) -> str:
    return ",".join(json.dumps(s) for s in items)


def write_script(path: Path, driver_ids: list[str], tokens: list[str]) -> Path:
    lua = _SCRIPT.replace("{IDS}", "{" + _lua_list(driver_ids) + "}")
    path.write_text(lua.replace("{TOKENS}", "{" + _lua_list(tokens) + "}"))
    return path


def available() -> bool:
    return Path(WRK).is_file()


def run(url: str, script: Path, seconds: int, connections: int, threads: int = 1) -> dict[str, Any]:
    if not available():
        raise RuntimeError("wrk not found: apt-get install wrk")
    out = subprocess.run(
        [WRK, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
         "-s", str(script), url, "--", str(threads)],
        capture_output=True, text=True, timeout=seconds + 60,
    )  # fmt: skip
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith('{"requests"')), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    r: dict[str, Any] = json.loads(line)
    r["rps"] = round(r["requests"] / (r["duration_us"] / 1e6), 1)
    return r
