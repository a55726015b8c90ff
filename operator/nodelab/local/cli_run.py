"""``nodelab run PHASE.yaml``: one phase file on this machine, as the cluster would run it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from nodelab.local import common, statusdoc, tables
from nodelab.local.fleet import Fleet
from nodelab.local.narration import Narrator, wide_console
from nodelab.local.phase_run import run_phase
from nodelab.local.settings import build_parser, parse, settings_from_args

__all__ = ["main", "phase56_lines"]

PROG = "nodelab run"


def _ratio(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"


def phase56_lines(status: Mapping[str, Any]) -> list[str]:
    """What a phase 5 or 6 run adds to the report: the storm's figures beside the storm
    model's, and each node's share and p99 beside the balancing model's (none otherwise)."""
    last_run, predicted = status.get("lastRun") or {}, status.get("prediction") or {}
    lines: list[str] = []
    measured, model = last_run.get("storm"), predicted.get("storm")
    if isinstance(measured, Mapping):
        model = model if isinstance(model, Mapping) else {}
        recovery = measured.get("recoverySeconds")
        lines.append(
            f"storm: {measured.get('verdict')}"
            + (f" {recovery} s after the trigger" if recovery is not None else "")
            + f"; amplification {_ratio(measured.get('amplification'))}x"
            f" (model {_ratio(model.get('amplification'))}x), goodput during the trigger "
            f"{_ratio(measured.get('goodputDuringTrigger'))} (model "
            f"{_ratio(model.get('goodputDuringTrigger'))}), after it "
            f"{_ratio(measured.get('goodputAfterTrigger'))} (model "
            f"{_ratio(model.get('goodputAfterTrigger'))})"
        )
        lines += [f"  model: {reason}" for reason in model.get("reasons") or ()]
    balancing = predicted.get("balancing")
    if isinstance(balancing, Mapping):
        p99 = (last_run.get("latencyMillis") or {}).get("p99")
        lines.append(
            f"balancing: {last_run.get('balancing')}; p99 {p99} ms "
            f"(model {balancing.get('p99Millis')} ms)"
        )
        nodes = balancing.get("nodes") or []
        # Local node ids are <lab>-<i>, the model's nodes in replica order (the slow ones last).
        rows = sorted(last_run.get("perNode") or [], key=lambda row: str(row.get("node")))
        for row, node in zip(rows, nodes, strict=False):
            slow = " (slow)" if node.get("slow") else ""
            node_p99 = (row.get("latencyMillis") or {}).get("p99")
            lines.append(
                f"  {row.get('node')}{slow}: share {_ratio(row.get('share'))} "
                f"(model {_ratio(node.get('share'))}), p99 {node_p99} ms "
                f"(model {node.get('p99Millis')} ms)"
            )
        others = ", ".join(
            f"{row.get('strategy')} {row.get('p99Millis')} ms"
            for row in balancing.get("strategies") or ()
        )
        lines.append(f"  model p99 by strategy: {others}")
    return lines


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
            for line in phase56_lines(status):
                out.print(line, markup=False)
        return 0

    return common.with_fleet(settings, narrator, PROG, body)


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main(sys.argv[1:]))
