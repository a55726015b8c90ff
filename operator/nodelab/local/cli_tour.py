"""``nodelab tour``: phases 1-4 in order on one fleet, one side-by-side table and a chart."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nodelab import spec as nodelab_spec
from nodelab.local import chart, common, render, results, statusdoc
from nodelab.local.fleet import Fleet
from nodelab.local.progress import Reporter, wide_console
from nodelab.local.session import PhaseResult, run_phase
from nodelab.local.settings import LocalSettings, build_parser, parse, settings_from_args

__all__ = ["main", "phase_files", "tour_title"]

PROG = "nodelab tour"


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
        "Deployment would), print them side by side with the capacity model, save a chart.",
    )
    parser.add_argument("--out", help="where the chart and JSON go [./nodelab-out]")
    parser.add_argument("--phases", help="folder of phase files [manifests/phases]")
    args, code = parse(parser, argv)
    if code >= 0:
        return code
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
    reporter = Reporter()
    out = wide_console()
    done: list[PhaseResult] = []

    def body(fleet: Fleet) -> int:
        status: dict[str, Any] | None = None
        for generation, (path, lab) in enumerate(labs, start=1):
            reporter.say(f"[bold]{path.stem}[/bold] ({generation}/{len(labs)})")
            result = run_phase(path, lab, settings, fleet, reporter, generation=generation)
            status = statusdoc.build_status(result, generation=generation, previous=status)
            done.append(result)
            for line in render.model_lines(result)[1:]:
                reporter.say(line.strip())
        assert status is not None
        title = tour_title(settings)
        out.print(render.tour_table(done, title))
        paths = chart.save_chart(done, settings.out_dir, title=title)
        results.write_results(settings.out_dir / "tour.json", settings, done)
        statusdoc.write_status(settings.out_dir / "status.json", status)
        out.print(f"chart: {paths[0]} and {paths[1]}")
        out.print(
            f"results: {settings.out_dir / 'tour.json'}; NodeLab status after the last phase: "
            f"{settings.out_dir / 'status.json'}"
        )
        return 0

    return common.with_fleet(settings, reporter, PROG, body)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
