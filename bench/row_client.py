"""Row 2: the load generator's client CPU per request and its top speed, against a raw aiohttp
loop and wrk, all loading the same bare target (the raw ASGI ``/health``).

Each Python client runs in its own process (``bench.cpu_probe``), which runs it several times
and reads its own ``getrusage`` around each run: a warm-up run, then a short and a long one. The
CPU per request is the difference between the long and the short run over the difference of
their requests, so interpreter start-up, imports and per-run work (sessions, the load report)
cancel out, and nothing of the server or the bench is counted. ``wait4`` also gives each probe
process's whole CPU, kept in the JSON. Rounds alternate which client of the compared pair runs
first; the row compares each client's best run (bench/README.md, "Best runs").
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Context, median, say
from bench.processes import Server, load_argv, run_measured, running, uvicorn_argv
from bench.table import Row, judge
from bench.wrk import MISSING, run_wrk
from loadgen.plan import LoadPlan

__all__ = ["TARGET", "run"]

TARGET = 1.15  # load generator CPU/request <= 1.15 x the raw aiohttp loop (issue 5)
CONCURRENCY = 32
SMALL = 2 * CONCURRENCY  # requests of the warm-up and of the per-run cost run
# Below this many requests per second a client run is broken, not slow: bounds every run.
_SLOWEST_RPS = 500.0


@dataclass(frozen=True)
class _Settings:
    rounds: int
    long: int  # requests of each long run
    longs: int  # long runs per probe process
    wrk_seconds: int


def _settings(quick: bool) -> _Settings:
    if quick:
        return _Settings(rounds=3, long=6_000, longs=2, wrk_seconds=1)
    return _Settings(rounds=6, long=15_000, longs=3, wrk_seconds=3)


@dataclass(frozen=True)
class _Probe:
    """One probe process: per long run, CPU per request and req/s; the process's whole CPU."""

    cpu_us: list[float]
    rps: list[float]
    whole_cpu_us: float


def _probe(client: str, url: str, settings: _Settings) -> _Probe:
    counts = (SMALL, SMALL, *([settings.long] * settings.longs))
    argv = [
        sys.executable, "-m", "bench.cpu_probe", client, "--url", url, "--path", "/health",
        "--concurrency", str(CONCURRENCY), "--requests", ",".join(map(str, counts)),
    ]  # fmt: skip
    measured = run_measured(argv, 60.0 + sum(counts) / _SLOWEST_RPS).check(f"{client} probe")
    runs = json.loads(measured.stdout.strip().splitlines()[-1])["runs"]
    for entry in runs:
        if entry["successes"] != entry["requests"]:
            raise RuntimeError(f"{client}: {entry['successes']} of {entry['requests']} succeeded")
    # runs[0] warms every lazy import; runs[1] is the per-run cost plus SMALL requests.
    small = runs[1]
    return _Probe(
        cpu_us=[
            (long["cpuSeconds"] - small["cpuSeconds"])
            / (long["requests"] - small["requests"])
            * 1e6
            for long in runs[2:]
        ],
        rps=[float(long["rps"]) for long in runs[2:]],
        whole_cpu_us=measured.cpu_s / sum(entry["successes"] for entry in runs) * 1e6,
    )


def _two_processes(url: str, requests: int) -> tuple[float, float]:
    """``nodelab load --processes 2`` as run by hand: its req/s and whole CPU per request."""
    with tempfile.TemporaryDirectory(prefix="nodelab-bench-") as tmp:
        report_path = Path(tmp) / "report.json"
        plan = LoadPlan(
            targets=(url,),
            path="/health",
            concurrency=CONCURRENCY,
            requests=requests,
            processes=2,
            timeout_s=10.0,
        )
        argv = load_argv(plan, report_path)
        measured = run_measured(argv, 60.0 + requests / _SLOWEST_RPS)
        measured.check("nodelab load --processes 2")
        report = json.loads(report_path.read_text(encoding="utf-8"))
    if report["errors"]["total"]:
        raise RuntimeError(f"nodelab load --processes 2 saw errors: {report['errors']['byKind']}")
    return float(report["rps"]), measured.cpu_s / int(report["successes"]) * 1e6


def _measure(ctx: Context, server: Server) -> dict[str, Any]:
    settings = _settings(ctx.quick)
    pair = ["raw", "loadgen"]
    names = ["raw", "loadgen1", "loadgen2", *(["wrk"] if ctx.wrk is not None else [])]
    cpu_us: dict[str, list[float]] = {name: [] for name in names if name != "loadgen2"}
    rps: dict[str, list[float]] = {name: [] for name in names}
    whole_us: dict[str, list[float]] = {name: [] for name in names if name != "wrk"}
    for round_index in range(settings.rounds):
        say(f"row 2: round {round_index + 1}/{settings.rounds}")
        # A B, then B A: the compared pair runs back to back, in either order.
        for client in pair if round_index % 2 == 0 else pair[::-1]:
            probe = _probe(client, server.url, settings)
            name = "raw" if client == "raw" else "loadgen1"
            cpu_us[name].extend(probe.cpu_us)
            rps[name].extend(probe.rps)
            whole_us[name].append(probe.whole_cpu_us)
        two_rps, two_whole = _two_processes(server.url, settings.long)
        rps["loadgen2"].append(two_rps)
        whole_us["loadgen2"].append(two_whole)
        if ctx.wrk is None:
            continue
        wrk = run_wrk(
            ctx.wrk,
            f"{server.url}/health",
            connections=CONCURRENCY,
            duration_s=settings.wrk_seconds,
        )
        # wrk starts in a millisecond: its whole CPU is per-request CPU.
        cpu_us["wrk"].append(wrk.cpu_s / wrk.requests * 1e6)
        rps["wrk"].append(wrk.rps)
    return {
        "rounds": settings.rounds,
        "concurrency": CONCURRENCY,
        "requests": {"warmUp": SMALL, "perRunCost": SMALL, "long": settings.long},
        "longRunsPerProbe": settings.longs,
        "wrkSeconds": settings.wrk_seconds,
        "cpuMicrosPerRequest": cpu_us,
        "wholeProcessCpuMicrosPerRequest": whole_us,
        "rps": rps,
    }


def run(ctx: Context) -> list[Row]:
    """Measure row 2 and return its rows (2a-2e; without wrk, 2b and 2d are skipped).

    Each figure is a client's best run: the least CPU per request and the most requests per
    second. A Python client's run at 32 connections settles into a fast or a slow regime of the
    event loops' batching, which changes its CPU per request by up to 2x from run to run on a
    2-core machine; the best run is the code's cost, the others add the regime it fell into.
    """
    cpu_figure = f"load generator CPU/request, 1 process, {CONCURRENCY} clients"
    rps_figure = "load generator max req/s, 1 process"
    say(
        "row 2: raw aiohttp loop, nodelab load (--processes 1 and 2)"
        + (" and wrk" if ctx.wrk else "") + " against raw ASGI /health"
    )  # fmt: skip
    with running("raw-asgi", lambda port: uvicorn_argv("bench.targets:raw_asgi_app", port)) as srv:
        data = _measure(ctx, srv)
    cpu = {name: min(values) for name, values in data["cpuMicrosPerRequest"].items()}
    rps = {name: max(values) for name, values in data["rps"].items()}
    data["bestCpuMicrosPerRequest"] = {k: round(v, 2) for k, v in cpu.items()}
    data["bestRps"] = {k: round(v, 1) for k, v in rps.items()}
    data["medianCpuMicrosPerRequest"] = {
        k: round(median(v), 2) for k, v in data["cpuMicrosPerRequest"].items()
    }
    data["medianRps"] = {k: round(median(v), 1) for k, v in data["rps"].items()}
    say(
        "row 2: best CPU/request " + ", ".join(f"{k} {v:.1f} us" for k, v in cpu.items())
        + "; best req/s " + ", ".join(f"{k} {v:,.0f}" for k, v in rps.items())
    )  # fmt: skip
    runs = len(data["cpuMicrosPerRequest"]["loadgen1"])
    vs_raw = cpu["loadgen1"] / cpu["raw"]
    lg_cpu = f"{cpu_figure}: {cpu['loadgen1']:.1f} us (best of {runs})"
    lg_rps = f"{rps_figure}: {rps['loadgen1']:,.0f} (best of {runs})"
    rows = [
        Row(
            "2a", lg_cpu, f"raw aiohttp loop: {cpu['raw']:.1f} us", vs_raw,
            f"<= {TARGET}", judge(vs_raw <= TARGET), data=data,
        ),
        Row(
            "2c", lg_rps, f"raw aiohttp loop: {rps['raw']:,.0f}",
            rps["loadgen1"] / rps["raw"], "-", "info",
        ),
        Row(
            "2e",
            f"load generator max req/s, --processes 2: {rps['loadgen2']:,.0f}",
            f"--processes 1: {rps['loadgen1']:,.0f}",
            rps["loadgen2"] / rps["loadgen1"], "-", "info",
        ),
    ]  # fmt: skip
    if "wrk" in cpu:
        rows += [
            Row(
                "2b", lg_cpu, f"wrk -t1: {cpu['wrk']:.1f} us",
                cpu["loadgen1"] / cpu["wrk"], "- (printed)", "info",
            ),
            Row(
                "2d", lg_rps, f"wrk -t1 (server-bound): {rps['wrk']:,.0f}",
                rps["loadgen1"] / rps["wrk"], "- (printed)", "info",
            ),
        ]  # fmt: skip
    else:
        rows += [
            Row.skipped("2b", lg_cpu, "wrk -t1", "- (printed)", MISSING),
            Row.skipped("2d", lg_rps, "wrk -t1", "- (printed)", MISSING),
        ]
    return sorted(rows, key=lambda row: row.key)
