"""Row 4: the capacity model against measurement, phases 1-4 in quick mode, CPU and I/O modes.

Runs exactly what ``nodelab tour --quick [--mode io]`` runs (the local runtime's ``Fleet`` and
``run_phase``: the same fleet reuse, calibration, load plan and model), with no chart, and reads
each phase's measured and predicted throughput from its results.
"""

from __future__ import annotations

import string
from typing import Any

from nodelab import spec as nodelab_spec
from nodelab.local import results
from nodelab.local.cli_tour import phase_files
from nodelab.local.fleet import Fleet, PortInUse, check_port_free
from nodelab.local.progress import Reporter
from nodelab.local.render import phase_label
from nodelab.local.session import PhaseResult, run_phase
from nodelab.local.settings import LocalSettings, Mode

from bench.common import Context, say
from bench.table import Row, judge, within
from tests.support.processes import free_port

__all__ = ["MODES", "TOLERANCE", "run"]

TOLERANCE = 0.20  # measured / predicted throughput within +-20% (issue 5)
MODES: tuple[Mode, ...] = ("cpu", "io")
_PORT_TRIES = 50


def _free_base_port(count: int) -> int:
    """A port p such that p .. p + count - 1 on 127.0.0.1 were all free a moment ago."""
    for _ in range(_PORT_TRIES):
        base = free_port()
        if base + count > 65000:
            continue
        try:
            for port in range(base, base + count):
                check_port_free("127.0.0.1", port)
        except PortInUse:
            continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


def _tour(mode: Mode) -> list[PhaseResult]:
    """Phases 1-4 in order on one fleet, as ``nodelab tour --quick --mode MODE`` runs them."""
    probe = LocalSettings(quick=True, mode=mode)
    labs = [(path, nodelab_spec.load_phase_file(path)) for path in phase_files(probe.phases_dir)]
    if not labs:
        raise RuntimeError(f"no phase-N-*.yaml files in {probe.phases_dir}")
    replicas = max(lab.spec.node.replicas for _, lab in labs)
    settings = LocalSettings(quick=True, mode=mode, base_port=_free_base_port(replicas))
    reporter = Reporter(quiet=True)
    done: list[PhaseResult] = []
    with Fleet(settings, reporter.say) as fleet:
        for generation, (path, lab) in enumerate(labs, start=1):
            say(f"row 4: {mode} mode, {path.stem}")
            done.append(run_phase(path, lab, settings, fleet, reporter, generation=generation))
    return done


def _entry(result: PhaseResult) -> dict[str, Any]:
    entry = results.result_entry(result)
    entry["report"] = {k: v for k, v in entry["report"].items() if k != "histogram"}
    return entry


def _row(key: str, mode: Mode, result: PhaseResult) -> Row:
    node = result.node
    rps = float(result.report.get("rps") or 0.0)
    prediction = result.prediction
    ratio = rps / prediction.throughput_rps
    return Row(
        key,
        f"{phase_label(result)} req/s, {mode} (R{node.replicas} W{node.workers} "
        f"C{result.concurrency}): {rps:.1f}",
        f"capacity model ({prediction.bottleneck}, S = {result.calibration.latency_ms:.1f} ms): "
        f"{prediction.throughput_rps:.1f}",
        ratio,
        f"{1 - TOLERANCE:.2f}-{1 + TOLERANCE:.2f}",
        judge(within(ratio, 1 - TOLERANCE, 1 + TOLERANCE)),
        data=_entry(result),
    )


def run(ctx: Context) -> list[Row]:
    """Measure row 4: one row per phase and mode (4a-4h)."""
    rows: list[Row] = []
    keys = iter(string.ascii_lowercase)
    for mode in MODES:
        try:
            done = _tour(mode)
        except Exception as exc:
            # The other mode's figures still count; this mode's line says what broke.
            say(f"row 4: {mode} mode failed: {exc}")
            error = f"{type(exc).__name__}: {exc}"
            target = f"{1 - TOLERANCE:.2f}-{1 + TOLERANCE:.2f}"
            key = f"4{next(keys)}"
            rows.append(
                Row.failed(key, f"quick tour, {mode} mode", "capacity model", target, error)
            )
            continue
        rows.extend(_row(f"4{next(keys)}", mode, result) for result in done)
    return rows
