"""wrk, the anchor of rows 1-3: installed from Debian if missing, run bounded, output parsed."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

from bench.common import say
from bench.processes import HOST, run_measured

__all__ = ["MISSING", "WrkResult", "ensure_wrk", "parse_output", "run_wrk"]

MISSING = "wrk not installed (apt-get install wrk)"
_APT_TIMEOUT_S = 300.0

_REQUESTS = re.compile(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m)\b", re.M)
_RPS = re.compile(r"^Requests/sec:\s*([0-9.]+)", re.M)
_P50 = re.compile(r"^\s*50(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m)\b", re.M)
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M
)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)", re.M)
_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _apt(*args: str) -> bool:
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    run = run_measured(["apt-get", *args], _APT_TIMEOUT_S, env=env, cpus=None)
    if run.returncode != 0:
        say(f"apt-get {' '.join(args)} failed ({run.returncode}): {run.stderr.strip()[-300:]}")
    return run.returncode == 0


def ensure_wrk() -> str | None:
    """The path of ``wrk``; installs the Debian package when missing (apt-get update only if the
    first install fails). None when it cannot be had: the rows that need it are skipped."""
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        say(f"{MISSING}: no apt-get or not root, so the rows that need it are skipped")
        return None
    say("wrk not found: apt-get install -y wrk")
    if not _apt("install", "-y", "--no-install-recommends", "wrk"):
        say("apt-get update, then install wrk again")
        if _apt("update"):
            _apt("install", "-y", "--no-install-recommends", "wrk")
    found = shutil.which("wrk")
    if found is None:
        say(f"{MISSING}: the rows that need it are skipped")
    return found


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: requests completed, their rate and median latency, errors, wrk's CPU."""

    requests: int
    duration_s: float
    rps: float
    p50_ms: float | None
    errors: int
    cpu_s: float


def parse_output(text: str, cpu_s: float = 0.0) -> WrkResult:
    """Read wrk's summary (``--latency`` adds the percentiles); ValueError if it is not there."""
    requests = _REQUESTS.search(text)
    rps = _RPS.search(text)
    if requests is None or rps is None:
        raise ValueError(f"no wrk summary in its output:\n{text.strip()[-400:]}")
    p50 = _P50.search(text)
    sockets = _SOCKET_ERRORS.search(text)
    non_2xx = _NON_2XX.search(text)
    errors = sum(int(n) for n in sockets.groups()) if sockets else 0
    errors += int(non_2xx[1]) if non_2xx else 0
    return WrkResult(
        requests=int(requests[1]),
        duration_s=float(requests[2]) * _TO_MS[requests[3]] / 1000.0,
        rps=float(rps[1]),
        p50_ms=float(p50[1]) * _TO_MS[p50[2]] if p50 else None,
        errors=errors,
        cpu_s=cpu_s,
    )


def run_wrk(
    wrk: str, url: str, *, connections: int, duration_s: int, latency: bool = False
) -> WrkResult:
    """``wrk -t1 -cN -dS [--latency] URL``: one thread, as the one-process Python clients."""
    if not url.startswith(f"http://{HOST}:"):
        raise ValueError(f"the bench only loads {HOST}, not {url}")
    argv = [wrk, "-t1", f"-c{connections}", f"-d{duration_s}s", "--timeout", "10s"]
    if latency:
        argv.append("--latency")
    run = run_measured([*argv, url], timeout_s=duration_s + 30.0).check("wrk")
    result = parse_output(run.stdout, run.cpu_s)
    if result.errors > max(1, result.requests // 100):
        raise RuntimeError(f"wrk saw {result.errors} errors in {result.requests} requests to {url}")
    return result
