"""``nodelab tour``: phases 1-4 in order on one fleet, one side-by-side table and a chart.

Before anything starts, the tour checks each phase's CPU (replicas x workers x cpuPerWorker)
against this machine's cores, as a scheduler would, says what this machine can show, and
picks the mode that shows the workshop's shapes (unless ``--mode`` says which).

``--storm`` runs phase 5's retry storms instead (:mod:`nodelab.local.storm_tour`) and
``--balancing`` phase 6's strategies (:mod:`nodelab.local.balancing_tour`), each on one lab.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loadgen.balancing import STRATEGIES
from nodelab.local import (
    balancing_chart,
    balancing_tour,
    chart,
    common,
    results,
    statusdoc,
    storm_chart,
    storm_tour,
    tables,
)
from nodelab.local.fleet import Fleet
from nodelab.local.narration import Narrator, wide_console
from nodelab.local.phase_run import PhaseResult, run_phase
from nodelab.local.settings import (
    LocalSettings,
    Mode,
    add_tour_flags,
    build_parser,
    parse,
    settings_from_args,
)
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


def tour_title(settings: LocalSettings, what: str = "scaling tour") -> str:
    """The table's and the chart's title: where and how the tour ran."""
    mode = "I/O-wait mode" if settings.mode == "io" else "CPU mode"
    quick = ", quick (work and SLO scaled down)" if settings.quick else ""
    return f"NodeLab {what} on {settings.cores} cores, {mode}{quick}"


def _load_all(files: Sequence[Path]) -> list[tuple[Path, nodelab_spec.NodeLab]] | None:
    labs = []
    for path in files:
        lab = common.load_phase(path, PROG)
        if lab is None:
            return None
        labs.append((path, lab))
    return labs


def queue_mode_line(
    labs: Sequence[nodelab_spec.NodeLab], requested: Mode | None
) -> tuple[Mode, str]:
    """The storm and balancing tours' mode: I/O unless ``--mode cpu``, and what it means.

    Their lessons are about queues (retries piling onto workers, a slow node's queue), not
    cores: I/O mode keeps the cores from deciding them on a small machine.
    """
    mode: Mode = requested or "io"
    if not any(lab.spec.node.load_factor > 0 for lab in labs):
        return mode, "Work: the phase files' ioMillis waits (no CPU work), whatever the mode."
    if mode == "io":
        return mode, (
            "Mode: I/O - fib(n) becomes a wait of the same length, so the workers' queues, not "
            "this machine's cores, decide (--mode cpu runs the CPU work)."
        )
    return mode, "Mode: CPU (--mode cpu): fib(n) runs on this machine's cores."


def main(argv: Sequence[str]) -> int:
    """Run the phases in order, print the table, save chart and JSON; 0 on success."""
    parser = build_parser(
        PROG,
        "Run phases 1-4 in order on 127.0.0.1 (one fleet, reused or scaled between phases as a "
        "Deployment would), print them side by side with the capacity model, save a chart. "
        "Without --mode the tour chooses: CPU when every phase's CPU (replicas x workers x "
        "cpuPerWorker) fits this machine's cores, else I/O. --storm: phase 5's retry storms "
        "(5a, 5b, 5c) instead; --balancing: phase 6a's fleet with every strategy.",
    )
    parser.add_argument("--out", help="where the chart and JSON go [./nodelab-out]")
    parser.add_argument("--phases", help="folder of phase files [manifests/phases]")
    add_tour_flags(parser)
    # No --mode (nor NODELAB_LOCAL_MODE): the tour chooses for this machine (choose_mode).
    parser.set_defaults(mode=os.environ.get(MODE_ENV) or None)
    args, code = parse(parser, argv)
    if code >= 0:
        return code
    requested: Mode | None = args.mode if args.mode in ("cpu", "io") else None
    settings = settings_from_args(args)
    if settings.tour == "storm":
        return storm_main(settings, requested)
    if settings.tour == "balancing":
        return balancing_main(settings, requested)
    files = phase_files(settings.phases_dir)
    if not files:
        print(f"{PROG}: no phase-N-*.yaml files in {settings.phases_dir}", file=sys.stderr)
        return common.EXIT_USAGE
    labs = _load_all(files)
    if labs is None:
        return common.EXIT_USAGE
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


def _report(
    out: Console,
    settings: LocalSettings,
    done: Sequence[PhaseResult],
    *,
    table: Table,
    why: str,
    why_lines: Sequence[str],
    save_chart: Callable[[], list[Path]],
    document: Path,
    extra: Mapping[str, Any],
) -> int:
    """A storm or balancing tour's ending: its table and the model's reasons under ``why``, its
    chart drawn, its results written to ``document``, and where both are; the exit status."""
    out.print(table)
    out.print(why)
    for line in why_lines:
        out.print(f"  {line}", markup=False)
    paths = save_chart()
    results.write_results(document, settings, done, extra)
    out.print(f"chart: {paths[0]} and {paths[1]}")
    out.print(f"results: {document}")
    return 0


def storm_main(settings: LocalSettings, requested: Mode | None) -> int:
    """``--storm``: phases 5a, 5b, 5c on one lab, one table, the timelines side by side."""
    files = storm_tour.storm_files(settings.phases_dir)
    if not files:
        print(f"{PROG}: no phase-5?-*.yaml files in {settings.phases_dir}", file=sys.stderr)
        return common.EXIT_USAGE
    labs = _load_all(files)
    if labs is None:
        return common.EXIT_USAGE
    mode, mode_line = queue_mode_line([lab for _, lab in labs], requested)
    settings = dataclasses.replace(settings, mode=mode)
    narrator = Narrator()
    out = wide_console()
    out.print("[bold]What the storm lab shows[/bold]")
    for line in storm_tour.intro_lines([(path.stem, lab) for path, lab in labs]):
        out.print(line, markup=False)
    out.print(mode_line, markup=False)
    out.print()

    def body(fleet: Fleet) -> int:
        done: list[PhaseResult] = []
        phases: list[storm_tour.StormPhase] = []
        for generation, (path, lab) in enumerate(labs, start=1):
            narrator.say(f"[bold]{path.stem}[/bold] ({generation}/{len(labs)})")
            if fleet.nodes:
                # A storm that did not recover leaves the nodes serving a backlog of abandoned
                # attempts: every phase starts from fresh nodes of the same lab.
                narrator.say("restarting the nodes: the last storm's backlog goes with them")
                fleet.stop()
            result = run_phase(path, lab, settings, fleet, narrator, generation=generation)
            done.append(result)
            phases.append(storm_tour.storm_phase(result))
        title = tour_title(settings, "retry-storm tour")
        return _report(
            out,
            settings,
            done,
            table=storm_tour.storm_table(phases, title),
            why="[bold]Why[/bold] (the storm model's reasons)",
            why_lines=storm_tour.why_lines(phases),
            save_chart=lambda: storm_chart.save_storm_chart(phases, settings.out_dir, title=title),
            document=settings.out_dir / "storm.json",
            extra=storm_tour.results_extra(phases),
        )

    return common.with_fleet(settings, narrator, PROG, body)


def balancing_main(settings: LocalSettings, requested: Mode | None) -> int:
    """``--balancing``: phase 6a's fleet with every strategy, one table and a chart."""
    path = balancing_tour.balancing_file(settings.phases_dir)
    if path is None:
        print(f"{PROG}: no phase-6a-*.yaml file in {settings.phases_dir}", file=sys.stderr)
        return common.EXIT_USAGE
    lab = common.load_phase(path, PROG)
    if lab is None:
        return common.EXIT_USAGE
    mode, mode_line = queue_mode_line([lab], requested)
    settings = dataclasses.replace(settings, mode=mode)
    narrator = Narrator()
    out = wide_console()
    out.print("[bold]What the balancing lab shows[/bold]")
    for line in balancing_tour.intro_lines(lab):
        out.print(line, markup=False)
    out.print(mode_line, markup=False)
    out.print()

    def body(fleet: Fleet) -> int:
        done: list[PhaseResult] = []
        runs: list[balancing_tour.BalancingRun] = []
        for generation, strategy in enumerate(STRATEGIES, start=1):
            narrator.say(f"[bold]{strategy}[/bold] ({generation}/{len(STRATEGIES)})")
            variant = balancing_tour.with_strategy(lab, strategy)
            result = run_phase(path, variant, settings, fleet, narrator, generation=generation)
            done.append(result)
            runs.append(balancing_tour.balancing_run(result))
        title = tour_title(settings, "load-balancing tour")
        return _report(
            out,
            settings,
            done,
            table=balancing_tour.balancing_table(runs, title),
            why="[bold]Why each verdict[/bold] (the balancing model)",
            why_lines=balancing_tour.verdict_lines(runs),
            save_chart=lambda: balancing_chart.save_balancing_chart(
                runs, settings.out_dir, title=title
            ),
            document=settings.out_dir / "balancing.json",
            extra=balancing_tour.results_extra(runs),
        )

    return common.with_fleet(settings, narrator, PROG, body)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
