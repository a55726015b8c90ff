"""``nodelab challenge``: the workshop's four challenges, answered by measurement on this machine.

1. crash a single-worker node (phase 1: p99 past the SLO);
2. raise the workers (1, 2, 4, 8, 10) until the SLO holds again;
3. sweep the concurrency against 10 workers (challenge-sweep.yaml) to find where they break;
4. say why horizontal scaling is the only way forward, from the model and the numbers above.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from rich.table import Table

from nodelab.local import common, results
from nodelab.local.fleet import Fleet
from nodelab.local.narration import Narrator, wide_console
from nodelab.local.phase_run import PhaseResult, run_phase
from nodelab.local.settings import LocalSettings, build_parser, parse, settings_from_args
from nodelab.local.tables import model_lines, verdict_style
from nodelab.model import spec as nodelab_spec

__all__ = ["WORKER_LEVELS", "horizontal_answer", "main", "with_workers"]

PROG = "nodelab challenge"
WORKER_LEVELS = (1, 2, 4, 8, 10)


def with_workers(lab: nodelab_spec.NodeLab, workers: int) -> nodelab_spec.NodeLab:
    """The same lab with ``workers`` worker processes per replica (vertical scaling)."""
    node = replace(lab.spec.node, workers=workers)
    return replace(lab, spec=replace(lab.spec, node=node))


def _p99(result: PhaseResult) -> float:
    return float((result.report.get("latencyMillis") or {}).get("p99") or 0)


def horizontal_answer(
    settings: LocalSettings,
    crash: PhaseResult,
    vertical: Sequence[PhaseResult],
    recovered: PhaseResult | None,
    sweep: PhaseResult,
) -> list[str]:
    """Challenge 4 in plain words, from the capacity model and what was measured here."""
    cores = settings.cores
    s_ms = sweep.calibration.latency_ms
    cpu_ms = sweep.prediction.cpu_ms
    best = max(vertical, key=lambda r: float(r.report.get("rps") or 0))
    best_rps = float(best.report.get("rps") or 0)
    breaking = sweep.report.get("breakingConcurrency")
    lines = [
        f"One request costs S = {s_ms:.1f} ms here, {cpu_ms:.1f} ms of it on a CPU core; "
        f"this machine gives the nodes {cores} cores (shared with the load generator).",
    ]
    if cpu_ms > 0.5 * s_ms:
        ceiling = cores * 1000.0 / cpu_ms
        lines.append(
            f"Vertical scaling adds worker processes, not cores: past {cores} workers they share "
            f"the same {cores} cores, so no worker count serves more than {cores}/S_cpu = "
            f"{ceiling:.1f} requests/s (best measured: {best_rps:.1f} rps with "
            f"{best.node.workers} workers)."
        )
        demand = sweep.sweep_predictions[-1][0] if sweep.sweep_predictions else sweep.concurrency
        needed = math.ceil(demand * cpu_ms / sweep.slo_ms)
        machines = math.ceil(needed / cores)
        lines.append(
            f"{demand} concurrent clients within the SLO (p99 <= {sweep.slo_ms:g} ms) need about "
            f"{demand} x {cpu_ms:.1f} / {sweep.slo_ms:g} = {needed} cores busy at once: "
            f"{machines} machines like this one. A bigger machine only moves the wall (the "
            "hardware max, its cost, one point of failure); horizontal scaling adds cores with "
            "every machine, without a ceiling - the only way forward."
        )
    else:
        lines.append(
            "In I/O-wait mode a worker holds a request without using a core, so here more workers "
            "did keep helping: capacity is replicas x workers and cores drop out of the model. "
            "But every worker is a process with its memory, and one machine runs only so many: "
            "run with --mode cpu to see the cores cap vertical scaling on this machine."
        )
    if breaking is not None:
        lines.append(
            f"Even 10 workers broke at {breaking} concurrent clients (model: "
            f"{sweep.predicted_breaking}); beyond one machine's capacity only more machines help."
        )
    if recovered is None:
        lines.append(
            f"Raising the workers to {vertical[-1].node.workers} never brought p99 back under the "
            "SLO on this machine: vertical scaling ran into the hardware."
        )
    del crash
    return lines


def _steps_table(rows: list[tuple[str, PhaseResult]]) -> Table:
    table = Table(title="The workshop's challenges, measured here", title_justify="left")
    for column in ("challenge", "W", "C", "p50 ms", "p99 ms", "SLO ms", "rps", "verdict"):
        table.add_column(column, justify="left" if column == "challenge" else "right")
    for label, result in rows:
        latency = result.report.get("latencyMillis") or {}
        verdict = str(result.report.get("verdict"))
        table.add_row(
            label,
            str(result.node.workers),
            str(result.concurrency),
            f"{float(latency.get('p50') or 0):,.1f}",
            f"{_p99(result):,.1f}",
            f"{result.slo_ms:,.1f}",
            f"{float(result.report.get('rps') or 0):.1f}",
            f"[{verdict_style(verdict)}]{verdict}[/]",
        )
    return table


def main(argv: Sequence[str]) -> int:
    """Answer challenges 1-4 with runs on this machine; 0 on success."""
    parser = build_parser(PROG, __doc__ or "")
    parser.add_argument("--out", help="where challenge.json goes [./nodelab-out]")
    parser.add_argument("--phases", help="folder of phase files [manifests/phases]")
    args, code = parse(parser, argv)
    if code >= 0:
        return code
    settings = settings_from_args(args)
    phase1_path = next(iter(sorted(settings.phases_dir.glob("phase-1-*.yaml"))), None)
    sweep_path = settings.phases_dir / "challenge-sweep.yaml"
    if phase1_path is None:
        print(f"{PROG}: no phase-1-*.yaml in {settings.phases_dir}", file=sys.stderr)
        return common.EXIT_USAGE
    phase1 = common.load_phase(phase1_path, PROG)
    sweep_lab = common.load_phase(sweep_path, PROG)
    if phase1 is None or sweep_lab is None:
        return common.EXIT_USAGE
    narrator = Narrator()
    out = wide_console()

    def body(fleet: Fleet) -> int:
        narrator.say("[bold]challenge 1[/bold]: crash a single-worker node")
        crash = run_phase(phase1_path, with_workers(phase1, 1), settings, fleet, narrator)
        rows: list[tuple[str, PhaseResult]] = [("1. one worker", crash)]
        vertical = [crash]
        recovered = crash if crash.report.get("verdict") == "OK" else None
        for workers in WORKER_LEVELS[1:]:
            if recovered is not None:
                break
            narrator.say(f"[bold]challenge 2[/bold]: {workers} workers")
            result = run_phase(
                f"challenge-2-workers-{workers}",
                with_workers(phase1, workers),
                settings,
                fleet,
                narrator,
            )
            vertical.append(result)
            rows.append((f"2. {workers} workers", result))
            if result.report.get("verdict") == "OK":
                recovered = result
        narrator.say("[bold]challenge 3[/bold]: concurrency sweep against 10 workers")
        sweep = run_phase(sweep_path, sweep_lab, settings, fleet, narrator)
        for level in sweep.report.get("sweep") or []:
            level_result = replace(
                sweep,
                report={
                    **sweep.report,
                    "concurrency": level["concurrency"],
                    "rps": level["rps"],
                    "verdict": level["verdict"],
                    "latencyMillis": {"p50": level["p50Millis"], "p99": level["p99Millis"]},
                },
            )
            rows.append((f"3. sweep c={level['concurrency']}", level_result))
        out.print(_steps_table(rows))
        answers: dict[str, Any] = {
            "1": f"one worker, {crash.concurrency} clients: p99 {_p99(crash):,.1f} ms vs SLO "
            f"{crash.slo_ms:g} ms -> {crash.report.get('verdict')}",
            "2": (
                f"the SLO holds again with {recovered.node.workers} workers "
                f"(p99 {_p99(recovered):,.1f} ms)"
                if recovered is not None
                else f"no worker count up to {WORKER_LEVELS[-1]} brought p99 under the SLO here"
            ),
            "3": (
                f"10 workers break at {sweep.report.get('breakingConcurrency')} concurrent "
                f"clients (model: {sweep.predicted_breaking})"
                if sweep.report.get("breakingConcurrency") is not None
                else "10 workers held the SLO at every level of the sweep"
            ),
            "4": horizontal_answer(settings, crash, vertical, recovered, sweep),
        }
        for key in ("1", "2", "3"):
            out.print(f"[bold]Challenge {key}[/bold]: {answers[key]}")
        out.print("[bold]Challenge 4[/bold]: why horizontal scaling is the only way forward")
        for line in answers["4"]:
            out.print(f"  {line}")
        for line in model_lines(sweep):
            narrator.say(line.strip())
        path = settings.out_dir / "challenge.json"
        results.write_results(
            path, settings, [r for _, r in rows if r is not None], {"answers": answers}
        )
        out.print(f"results: {path}")
        return 0

    return common.with_fleet(settings, narrator, PROG, body)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
