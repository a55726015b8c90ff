"""``nodelab run PHASE.yaml``: one phase file on this machine, as the cluster would run it."""

from __future__ import annotations

import json
from collections.abc import Sequence

from nodelab.local import common, statusdoc, tables
from nodelab.local.fleet import Fleet
from nodelab.local.narration import Narrator, wide_console
from nodelab.local.phase_run import run_phase
from nodelab.local.settings import build_parser, parse, settings_from_args

__all__ = ["main"]

PROG = "nodelab run"


def main(argv: Sequence[str]) -> int:
    """Validate a phase file, start its fleet, load it, print and write the status; 0 on success."""
    parser = build_parser(
        PROG,
        "Run one phase file on 127.0.0.1: validate it against the CRD, start replicas x workers "
        "node processes, calibrate, run the load generator, compare with the capacity model, "
        "write the NodeLab status, stop every process.",
    )
    parser.add_argument("phase_file", help="a NodeLab phase file, e.g. manifests/phases/...")
    parser.add_argument("--status-out", help="write the status JSON here (history continues)")
    parser.add_argument("--json", action="store_true", help="print the status JSON on stdout")
    args, code = parse(parser, argv)
    if code >= 0:
        return code
    settings = settings_from_args(args)
    lab = common.load_phase(args.phase_file, PROG)
    if lab is None:
        return common.EXIT_USAGE
    narrator = Narrator()
    previous = statusdoc.read_previous(settings.status_out) if settings.status_out else None
    generation = int(previous.get("observedGeneration") or 0) + 1 if previous else lab.generation
    out = wide_console()

    def body(fleet: Fleet) -> int:
        result = run_phase(args.phase_file, lab, settings, fleet, narrator, generation=generation)
        status = statusdoc.build_status(result, previous=previous)
        if settings.status_out:
            statusdoc.write_status(settings.status_out, status)
            narrator.say(f"status written to {settings.status_out}")
        if settings.json_output:
            print(json.dumps(status, indent=2))
        else:
            out.print(tables.report_table(result))
            for line in tables.model_lines(result):
                out.print(line)
        return 0

    return common.with_fleet(settings, narrator, PROG, body)


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main(sys.argv[1:]))
