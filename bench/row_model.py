"""Row 4: the capacity model against measurement, phases 1-4 in quick mode, CPU and I/O modes.

Runs what ``nodelab tour --quick --mode cpu|io`` runs (the local runtime's ``Fleet`` and
``run_phase``: the same fleet reuse, calibration, load plan and model), with no chart, each
phase for a few rounds on its fleet (calibration and load each time), and compares each round's
measured throughput and p99 with the model's prediction from that round's calibration. The rows
show the median of the per-round ratios, as row 1 does.

The model counts this machine's cores as the fleet's and the load generator's. Other processes
(another engineer's tests, a build) take some of them; the row measures how much during every
load (the machine's busy CPU from ``/proc/stat`` minus the fleet's and this process's own, from
``/proc/<pid>/task/*/schedstat``), and a miss while they took more than
``INTERFERENCE_CORES`` is printed as ``info`` with that figure, not judged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import string
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import uvloop
from nodelab.local import results
from nodelab.local.cli_tour import phase_files
from nodelab.local.fleet import Fleet, FleetSpec
from nodelab.local.narration import Narrator
from nodelab.local.phase_run import PhaseResult, run_phase
from nodelab.local.settings import LocalSettings, Mode
from nodelab.local.tables import phase_label, predicted_verdict
from nodelab.model import spec as nodelab_spec

from bench.common import Context, hdr_percentile, median, say
from bench.table import Row, Status, judge, within
from tests.support.processes import free_base_port

__all__ = [
    "INTERFERENCE_CORES",
    "MODES",
    "P99_TOLERANCE",
    "TOLERANCE",
    "busy_seconds",
    "probe",
    "run",
]

TOLERANCE = 0.20  # measured / predicted throughput within +-20% (issue 5)
P99_TOLERANCE = 0.25  # predicted p99 within +-25% of the measured one (issue 10)
# Other processes' CPU during the loads above which a miss is not the model's to judge.
INTERFERENCE_CORES = 0.25
MODES: tuple[Mode, ...] = ("cpu", "io")
ROUNDS_QUICK = 3
ROUNDS_FULL = 5
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def busy_seconds(stat_line: str) -> float:
    """CPU seconds the machine spent busy, from the ``cpu`` line of ``/proc/stat``.

    Busy is everything but idle and iowait; guest time is already inside user time.
    """
    fields = [int(value) for value in stat_line.split()[1:9]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / _CLOCK_TICKS


def _machine_busy() -> float:
    with open("/proc/stat", encoding="ascii") as handle:
        return busy_seconds(handle.readline())


def _tasks_seconds(pid: str) -> float:
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as handle:
                total += int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass  # the process ended meanwhile: its time is lost to both snapshots alike
    return total / 1e9


def _groups_seconds(groups: set[int]) -> float:
    """CPU seconds of every process in the process ``groups`` (the fleet's), this one aside."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                pgrp = int(handle.read().rsplit(")", 1)[1].split()[2])
        except (OSError, ValueError, IndexError):
            continue
        if pgrp in groups:
            total += _tasks_seconds(entry)
    return total


def _own_seconds(groups: set[int]) -> float:
    """CPU seconds of this process and of every process in ``groups`` (the fleet's)."""
    return _tasks_seconds(str(os.getpid())) + _groups_seconds(groups)


class _LoadMeter(Narrator):
    """A quiet narrator that measures other processes' CPU while each load level runs."""

    def __init__(self, groups: Callable[[], list[int]]) -> None:
        super().__init__(quiet=True)
        self._groups = groups
        self._start: tuple[float, float, float] | None = None
        self.others_cores: list[float] = []

    def begin(self, label: str, total: int | None, duration_s: float | None) -> None:
        """Snapshot the machine's and the lab's CPU as the load starts."""
        self._start = (time.monotonic(), _machine_busy(), _own_seconds(set(self._groups())))

    def end(self) -> None:
        """The other processes' average cores over the load."""
        if self._start is None:
            return
        wall = time.monotonic() - self._start[0]
        busy = _machine_busy() - self._start[1]
        own = _own_seconds(set(self._groups())) - self._start[2]
        self.others_cores.append(max(busy - own, 0.0) / wall if wall > 0 else 0.0)
        self._start = None


@dataclass(frozen=True)
class _Phase:
    """One phase's rounds, each with the other processes' cores during its load."""

    rounds: tuple[PhaseResult, ...]
    others_cores: tuple[float, ...]


def _tour(mode: Mode, rounds: int) -> list[_Phase]:
    """Phases 1-4 in order on one fleet, as ``nodelab tour --quick --mode MODE`` runs them."""
    probe = LocalSettings(quick=True, mode=mode)
    labs = [(path, nodelab_spec.load_phase_file(path)) for path in phase_files(probe.phases_dir)]
    if not labs:
        raise RuntimeError(f"no phase-N-*.yaml files in {probe.phases_dir}")
    replicas = max(lab.spec.node.replicas for _, lab in labs)
    settings = LocalSettings(quick=True, mode=mode, base_port=free_base_port(replicas))
    done: list[_Phase] = []
    with Fleet(settings, Narrator(quiet=True).say) as fleet:
        meter = _LoadMeter(lambda: fleet.pgids)
        for generation, (path, lab) in enumerate(labs, start=1):
            measured: list[PhaseResult] = []
            for turn in range(1, rounds + 1):
                say(f"row 4: {mode} mode, {path.stem}, round {turn}/{rounds}")
                measured.append(run_phase(path, lab, settings, fleet, meter, generation=generation))
            others = tuple(meter.others_cores[-rounds:])
            done.append(_Phase(tuple(measured), others))
    return done


def _entry(result: PhaseResult, others_cores: float) -> dict[str, Any]:
    entry = results.result_entry(result)
    entry["report"] = {k: v for k, v in entry["report"].items() if k != "histogram"}
    entry["otherProcessesCores"] = round(others_cores, 3)
    return entry


def _p99(result: PhaseResult) -> float:
    return float((result.report.get("latencyMillis") or {}).get("p99") or 0.0)


def _rps(result: PhaseResult) -> float:
    return float(result.report.get("rps") or 0.0)


def _median_round(phase: _Phase, ratios: Sequence[float]) -> int:
    """The index of the round whose ratio is the median (the lower one of an even count)."""
    order = sorted(range(len(ratios)), key=lambda i: ratios[i])
    return order[(len(order) - 1) // 2]


# A measured p99 within this fraction of the SLO is on the line between OK and Crashed.
EDGE_OF_SLO = 0.05


def _status(hit: bool, others: float) -> tuple[Status, str]:
    if hit or others <= INTERFERENCE_CORES:
        return judge(hit), ""
    return "info", (
        f"other processes used {others:.2f} cores during the loads (median): the model counts "
        "the cores as the fleet's"
    )


def _shape(result: PhaseResult, mode: Mode) -> str:
    node = result.node
    return f"{mode} (R{node.replicas} W{node.workers} C{result.concurrency})"


def _throughput_row(key: str, mode: Mode, phase: _Phase) -> Row:
    ratios = [_rps(r) / r.prediction.throughput_rps for r in phase.rounds]
    pick = _median_round(phase, ratios)
    result = phase.rounds[pick]
    prediction = result.prediction
    ratio = median(ratios)
    others = median(phase.others_cores) if phase.others_cores else 0.0
    status, note = _status(within(ratio, 1 - TOLERANCE, 1 + TOLERANCE), others)
    return Row(
        key,
        f"{phase_label(result)} req/s, {_shape(result, mode)}: {_rps(result):.1f}",
        f"capacity model ({prediction.bottleneck}, S = {result.calibration.latency_ms:.1f} ms): "
        f"{prediction.throughput_rps:.1f}",
        ratio,
        f"{1 - TOLERANCE:.2f}-{1 + TOLERANCE:.2f}",
        status,
        note,
        data={
            "ratios": [round(r, 4) for r in ratios],
            "rounds": [_entry(r, o) for r, o in zip(phase.rounds, phase.others_cores, strict=True)],
        },
    )


def _p99_row(key: str, mode: Mode, phase: _Phase) -> Row:
    ratios = [_p99(r) / r.prediction.p99_ms for r in phase.rounds]
    pick = _median_round(phase, ratios)
    result = phase.rounds[pick]
    prediction = result.prediction
    ratio = median(ratios)
    measured = [str(r.report.get("verdict")) for r in phase.rounds]
    predicted = [predicted_verdict(r) for r in phase.rounds]
    agree = sum(1 for m, p in zip(measured, predicted, strict=True) if m == p)
    others = median(phase.others_cores) if phase.others_cores else 0.0
    # Model within +-25% of the measured p99: measured / model within 1/1.25 .. 1/0.75.
    low, high = 1 / (1 + P99_TOLERANCE), 1 / (1 - P99_TOLERANCE)
    hit = within(ratio, low, high) and agree == len(phase.rounds)
    status, note = _status(hit, others)
    if agree < len(phase.rounds):
        differ = f"verdicts differ in {len(measured) - agree} round(s)"
        # A p99 this close to the SLO is decided by the machine's noise, not by the model: the
        # workshop's own phase 3 is 2 rounds x 2.7 s = 5.4 s against a 5 s SLO, 8% past it.
        edge = min(
            abs(_p99(r) / r.slo_ms - 1)
            for r, m, v in zip(phase.rounds, measured, predicted, strict=True)
            if m != v
        )
        if edge < EDGE_OF_SLO:
            differ += f" (p99 within {edge:.0%} of the SLO there: the verdict sits on the line)"
        note = f"{differ}; {note}" if note else differ
    return Row(
        key,
        f"{phase_label(result)} p99, {_shape(result, mode)}: {_p99(result):,.1f} ms "
        f"{result.report.get('verdict')} (SLO {result.slo_ms:g} ms)",
        f"capacity model ({prediction.p99_cause}): {prediction.p99_ms:,.1f} ms "
        f"{predicted_verdict(result)}; verdicts agree {agree}/{len(phase.rounds)}",
        ratio,
        f"{low:.2f}-{high:.2f}, verdicts",
        status,
        note,
        data={
            "ratios": [round(r, 4) for r in ratios],
            "measuredVerdicts": measured,
            "predictedVerdicts": predicted,
            "otherProcessesCores": [round(o, 3) for o in phase.others_cores],
        },
    )


def _keys() -> Iterator[str]:
    return (f"4{letter}" for letter in string.ascii_lowercase)


def run(ctx: Context) -> list[Row]:
    """Measure row 4: throughput (4a-4h) and p99 with the verdict (4i-4p), per phase and mode."""
    rounds = ROUNDS_QUICK if ctx.quick else ROUNDS_FULL
    throughput: list[Row] = []
    latency: list[Row] = []
    keys = _keys()
    p99_keys = _keys()
    for _ in range(8):
        next(p99_keys)
    for mode in MODES:
        try:
            phases = _tour(mode, rounds)
        except Exception as exc:
            # The other mode's figures still count; this mode's lines say what broke.
            say(f"row 4: {mode} mode failed: {exc}")
            error = f"{type(exc).__name__}: {exc}"
            throughput.append(
                Row.failed(next(keys), f"quick tour, {mode} mode", "capacity model", "-", error)
            )
            latency.append(
                Row.failed(next(p99_keys), f"quick tour p99, {mode} mode", "model", "-", error)
            )
            continue
        throughput.extend(_throughput_row(next(keys), mode, phase) for phase in phases)
        latency.extend(_p99_row(next(p99_keys), mode, phase) for phase in phases)
    return throughput + latency


# -- the probe behind docs/local.md's "What the model says" -------------------------------------


async def _probe_level(
    urls: Sequence[str], concurrency: int, requests: int
) -> list[dict[str, Any]]:
    """A closed loop as the load generator runs it (one new connection per request), keeping
    every answer's worker ``pid``, ``queueMillis`` and ``serviceMillis`` beside its latency."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0, force_close=True)
    records: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        issued = 0

        async def client() -> None:
            nonlocal issued
            while issued < requests:
                index, issued = issued, issued + 1
                sent = time.perf_counter()
                async with session.get(urls[index % len(urls)]) as response:
                    answer = await response.json()
                latency = (time.perf_counter() - sent) * 1000
                records.append({"index": index, "latencyMillis": latency, **answer})

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return records


def probe(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.row_model``: how a burst of connections spreads over a node's workers.

    Starts ``--replicas`` x ``--workers`` nodes computing fib(``--load-factor``), runs
    ``--rounds`` closed loops of ``--concurrency`` clients and ``--requests`` requests, and
    prints per round: req/s, p99, how many workers took the first C connections and the most one
    took, and the CPU per request of this process (the client) and of the nodes.
    """
    parser = argparse.ArgumentParser(prog="python -m bench.row_model", description=probe.__doc__)
    for flag, default in (
        ("replicas", 1),
        ("workers", 10),
        ("concurrency", 20),
        ("requests", 40),
        ("rounds", 3),
        ("load-factor", 27),
        ("io-millis", 0),
    ):
        parser.add_argument(f"--{flag}", type=int, default=default)
    args = parser.parse_args(argv)
    settings = LocalSettings(base_port=free_base_port(args.replicas))
    spec = FleetSpec("probe", args.replicas, args.workers, args.load_factor, args.io_millis)
    with (
        Fleet(settings, lambda line: print(line, file=sys.stderr)) as fleet,
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop,
    ):
        fleet.apply(spec)
        urls = [url + "/work" for url in fleet.urls]
        loop.run(_probe_level(urls, 1, 2 * len(urls)))  # warm-up: first answers pay imports
        for turn in range(args.rounds):
            groups = set(fleet.pgids)
            client0, nodes0 = time.process_time(), _groups_seconds(groups)
            started = time.perf_counter()
            records = loop.run(_probe_level(urls, args.concurrency, args.requests))
            wall = time.perf_counter() - started
            client = time.process_time() - client0
            nodes = _groups_seconds(groups) - nodes0
            first = [r["pid"] for r in records if r["index"] < args.concurrency]
            per_worker = sorted((first.count(pid) for pid in set(first)), reverse=True)
            latencies = [r["latencyMillis"] for r in records]
            line = {
                "round": turn + 1,
                "rps": round(len(records) / wall, 1),
                "p99Millis": round(hdr_percentile(latencies, 99.0), 1),
                "meanMillis": round(sum(latencies) / len(latencies), 1),
                "firstConnectionsPerWorker": per_worker,
                "clientCpuMillisPerRequest": round(client * 1000 / len(records), 2),
                "nodeCpuMillisPerRequest": round(nodes * 1000 / len(records), 2),
            }
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(probe())
