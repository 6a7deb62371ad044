"""HTTP load with ``wrk``: C and LuaJIT, one client thread, so it takes little of the 2 cores the
server shares with it.

Request bodies are pre-serialised, one per line of a file the Lua script reads; each wrk
thread pre-formats its requests in ``init`` and cycles through them. ``done`` prints the
summary and the latency percentiles (wrk's own HDR-style histogram, microseconds) as one
JSON line, which is parsed here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TIMEOUT_S = 10  # wrk's per-request timeout; a request slower than this counts as an error
MARKER = "WRKJSON "

SCRIPT = """\
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
local requests = {}
local next_index = 0

function init(args)
  local headers = {["Content-Type"] = "application/json"}
  for i, body in ipairs(bodies) do
    requests[i] = wrk.format("POST", "%(path)s", headers, body)
  end
end

function request()
  next_index = next_index %% #requests + 1
  return requests[next_index]
end

function done(summary, latency, requests_)
  local e = summary.errors
  io.write(string.format(
    '%(marker)s{"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,'
    .. '"status":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"max_us":%%d,'
    .. '"mean_us":%%.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""


@dataclass(frozen=True)
class LoadFigures:
    """One load run: rates over its duration, latency percentiles in ms, errors of any kind."""

    requests: int
    ok_requests: int
    duration_s: float
    req_per_s: float
    rows_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    error_kinds: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def write_script(folder: Path, tag: str, path: str, bodies: list[bytes]) -> Path:
    """The Lua script posting `bodies` (cycled) to `path`; returns its file."""
    body_file = folder / f"{tag}.bodies"
    body_file.write_bytes(b"\n".join(bodies) + b"\n")
    script = folder / f"{tag}.lua"
    script.write_text(SCRIPT % {"bodies": body_file, "path": path, "marker": MARKER})
    return script


def run_wrk(url: str, script: Path, *, concurrency: int, seconds: float, rows: int) -> LoadFigures:
    """`concurrency` keep-alive connections for `seconds`; bounded by wrk and by a hard timeout."""
    binary = wrk_binary()
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    argv = [
        binary, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s",
        f"--timeout={TIMEOUT_S}s", "--latency", "-s", str(script), url,
    ]  # fmt: skip
    result = subprocess.run(  # noqa: S603  # our own argv, a loopback URL
        argv, capture_output=True, text=True, timeout=seconds + TIMEOUT_S + 30, check=False
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith(MARKER)), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr[-500:]}")
    return _figures(json.loads(line.removeprefix(MARKER)), rows)


def _figures(raw: dict[str, Any], rows: int) -> LoadFigures:
    duration = raw["duration_us"] / 1e6
    kinds = {k: int(raw[k]) for k in ("connect", "read", "write", "status", "timeout") if raw[k]}
    ok = max(0, raw["requests"] - raw["status"])
    return LoadFigures(
        requests=raw["requests"],
        ok_requests=ok,
        duration_s=duration,
        req_per_s=ok / duration,
        rows_per_s=ok * rows / duration,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=sum(kinds.values()),
        error_kinds=kinds,
    )
