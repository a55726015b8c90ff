"""``nodelab tour``: phases 1-4 in order on one fleet, one side-by-side table and a chart.

Before anything starts, the tour checks each phase's CPU (replicas x workers x cpuPerWorker)
against this machine's cores, as a scheduler would, says what this machine can show, and
picks the mode that shows the workshop's shapes (unless ``--mode`` says which).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodelab.local import chart, common, results, statusdoc, tables
from nodelab.local.fleet import Fleet
from nodelab.local.narration import Narrator, wide_console
from nodelab.local.phase_run import PhaseResult, run_phase
from nodelab.local.settings import LocalSettings, Mode, build_parser, parse, settings_from_args
from nodelab.model import quantity
from nodelab.model import spec as nodelab_spec

__all__ = ["ModeChoice", "choose_mode", "main", "phase_cpu_millicores", "phase_files", "tour_title"]

PROG = "nodelab tour"
MODE_ENV = "NODELAB_LOCAL_MODE"


@dataclass(frozen=True)
class ModeChoice:
    """The mode the tour runs in, whether it was chosen for this machine, and what to say."""

    mode: Mode
    automatic: bool
    lines: tuple[str, ...]


def phase_cpu_millicores(lab: nodelab_spec.NodeLab) -> int:
    """The CPU a scheduler reserves for a phase: replicas x workers x cpuPerWorker."""
    return lab.spec.node.replicas * lab.spec.node.pod_cpu_millicores


def _cores(millicores: int) -> str:
    return f"{millicores / 1000:g}"


def choose_mode(
    cores: int, phases: Sequence[tuple[str, nodelab_spec.NodeLab]], requested: Mode | None = None
) -> ModeChoice:
    """The tour's mode for ``cores`` cores and these phases, and the words that explain it.

    ``phases`` are (name, lab) pairs in order; ``requested`` is ``--mode`` (None: choose).
    CPU mode shows the workshop's shapes only when every phase's CPU fits the cores: otherwise
    the workers of the big phases share the cores, the cores cap every phase, and vertical or
    horizontal scaling shows no recovery. Then I/O mode, where the workers set the limit, does.
    """
    width = max((len(name) for name, _ in phases), default=0)
    lines = [
        f"This machine gives the nodes and the load generator {cores} cores. Each phase asks "
        "for replicas x workers x cpuPerWorker of CPU, as a scheduler counts it:"
    ]
    too_big: list[str] = []
    for name, lab in phases:
        node = lab.spec.node
        need = phase_cpu_millicores(lab)
        fits = need <= cores * 1000
        if not fits:
            too_big.append(name)
        cpu = quantity.format_cpu(quantity.cpu_millicores(node.cpu_per_worker))
        verdict = "fits" if fits else f"{need / (cores * 1000):.1f}x these {cores} cores"
        lines.append(
            f"  {name:<{width}}  {node.replicas} x {node.workers:>2} x {cpu} = "
            f"{_cores(need):>4} CPU  {verdict}"
        )
    workers = sorted(
        {lab.spec.node.replicas * lab.spec.node.workers for name, lab in phases if name in too_big}
    )
    if too_big:
        span = f"{workers[0]}-{workers[-1]}" if len(workers) > 1 else str(workers[0])
        lines.append(
            f"A scheduler would leave {_names(too_big)} Pending here. Run on these {cores} cores "
            f"with fib(n) as CPU work (CPU mode), their workers ({span} per phase) would share "
            f"{cores} cores: the cores, not the workers, would set the limit, more workers or "
            "replicas would only share them, and scaling would show no recovery."
        )
    else:
        lines.append(f"Every phase fits these {cores} cores.")
    io_words = (
        "I/O - fib(n) becomes a wait of the same length; each worker still serves one "
        "request at a time, so the workers, not the cores, set the limit"
    )
    if requested is None:
        mode: Mode = "io" if too_big else "cpu"
        if mode == "io":
            lines.append(
                f"Mode: {io_words} - the workshop's shapes (chosen for this machine; "
                "--mode cpu runs the CPU work and shows the cores' limit, challenge 4)."
            )
        else:
            lines.append(
                "Mode: CPU, the workshop's fib(n) work (chosen for this machine; --mode io turns "
                "the work into waiting)."
            )
        return ModeChoice(mode, True, tuple(lines))
    if requested == "io":
        lines.append(f"Mode: {io_words} (--mode io).")
    elif too_big:
        lines.append(
            "Mode: CPU (--mode cpu): expect the cores to cap the phases that do not fit, and "
            "their p99 to pass the SLO."
        )
    else:
        lines.append("Mode: CPU, the workshop's fib(n) work (--mode cpu).")
    return ModeChoice(requested, False, tuple(lines))


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def phase_files(phases_dir: Path) -> list[Path]:
    """``phase-1-*.yaml`` .. ``phase-4-*.yaml`` in order."""
    return sorted(phases_dir.glob("phase-[1-9]-*.yaml"))


def tour_title(settings: LocalSettings) -> str:
    """The table's and the chart's title: where and how the tour ran."""
    mode = "I/O-wait mode" if settings.mode == "io" else "CPU mode"
    quick = ", quick (work and SLO scaled down)" if settings.quick else ""
    return f"NodeLab scaling tour on {settings.cores} cores, {mode}{quick}"


def main(argv: Sequence[str]) -> int:
    """Run the phases in order, print the table, save chart and JSON; 0 on success."""
    parser = build_parser(
        PROG,
        "Run phases 1-4 in order on 127.0.0.1 (one fleet, reused or scaled between phases as a "
        "Deployment would), print them side by side with the capacity model, save a chart. "
        "Without --mode the tour chooses: CPU when every phase's CPU (replicas x workers x "
        "cpuPerWorker) fits this machine's cores, else I/O.",
    )
    parser.add_argument("--out", help="where the chart and JSON go [./nodelab-out]")
    parser.add_argument("--phases", help="folder of phase files [manifests/phases]")
    # No --mode (nor NODELAB_LOCAL_MODE): the tour chooses for this machine (choose_mode).
    parser.set_defaults(mode=os.environ.get(MODE_ENV) or None)
    args, code = parse(parser, argv)
    if code >= 0:
        return code
    requested: Mode | None = args.mode if args.mode in ("cpu", "io") else None
    settings = settings_from_args(args)
    files = phase_files(settings.phases_dir)
    if not files:
        print(f"{PROG}: no phase-N-*.yaml files in {settings.phases_dir}", file=sys.stderr)
        return common.EXIT_USAGE
    labs: list[tuple[Path, nodelab_spec.NodeLab]] = []
    for path in files:
        lab = common.load_phase(path, PROG)
        if lab is None:
            return common.EXIT_USAGE
        labs.append((path, lab))
    choice = choose_mode(settings.cores, [(path.stem, lab) for path, lab in labs], requested)
    settings = dataclasses.replace(settings, mode=choice.mode)
    narrator = Narrator()
    out = wide_console()
    out.print("[bold]What this machine can show[/bold]")
    for line in choice.lines:
        out.print(line, markup=False)
    out.print()
    done: list[PhaseResult] = []

    def body(fleet: Fleet) -> int:
        status: dict[str, Any] | None = None
        for generation, (path, lab) in enumerate(labs, start=1):
            narrator.say(f"[bold]{path.stem}[/bold] ({generation}/{len(labs)})")
            result = run_phase(path, lab, settings, fleet, narrator, generation=generation)
            status = statusdoc.build_status(result, previous=status)
            done.append(result)
            for line in tables.model_lines(result)[1:]:
                narrator.say(line.strip())
        assert status is not None
        title = tour_title(settings)
        out.print(tables.tour_table(done, title))
        out.print("[bold]Why each verdict[/bold] (the capacity model, from S measured alone)")
        for line in tables.verdict_lines(done):
            out.print(f"  {line}", markup=False)
        paths = chart.save_chart(done, settings.out_dir, title=title)
        results.write_results(settings.out_dir / "tour.json", settings, done)
        statusdoc.write_status(settings.out_dir / "status.json", status)
        out.print(f"chart: {paths[0]} and {paths[1]}")
        out.print(
            f"results: {settings.out_dir / 'tour.json'}; NodeLab status after the last phase: "
            f"{settings.out_dir / 'status.json'}"
        )
        return 0

    return common.with_fleet(settings, narrator, PROG, body)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
