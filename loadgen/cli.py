"""``nodelab load`` / ``python -m loadgen``: flags -> :class:`LoadPlan` -> run -> report.

Also renders a plan back into flags (:func:`build_argv`), which the operator uses to build
the load Job's command. Bad input exits with code 2 and a message naming the flag.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from loadgen.plan import DEFAULT_PATH, DEFAULT_TARGETS, LoadPlan, PlanError

__all__ = ["FLAGS", "CliOptions", "UsageError", "build_argv", "build_parser", "main", "parse"]

PROG = "nodelab load"

# LoadPlan field -> the flag that sets it, so plan errors name what the user typed.
FLAGS: dict[str, str] = {
    "targets": "--target",
    "path": "--path",
    "concurrency": "--concurrent",
    "requests": "--requests",
    "duration_s": "--duration",
    "rate": "--rate",
    "timeout_s": "--timeout",
    "processes": "--processes",
    "slo_p99_ms": "--slo-p99-ms",
    "sweep": "--sweep",
    "calibrate": "--calibrate",
    "generation": "--generation",
    "expand_dns": "--expand-dns",
    "deadline_s": "--deadline",
}


class UsageError(Exception):
    """Bad command-line input: the message names the flag; the exit code is 2."""


@dataclass(frozen=True)
class CliOptions:
    """What the command does with the report, beside the plan itself."""

    json_path: str | None = None
    report_to: str | None = None
    quiet: bool = False


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or a positive integer, got {text!r}")
    return value


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(","))
    except ValueError:
        levels = ()
    if not levels or any(level <= 0 for level in levels):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive concurrency levels like 1,5,10,20, got {text!r}"
        )
    return levels


def _report_to(text: str) -> str:
    from loadgen.reporter import parse_report_to

    try:
        parse_report_to(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``nodelab load``."""
    parser = _Parser(
        prog=PROG,
        description=(
            "Flood nodes with requests and report latency, throughput and errors: a closed "
            "loop of N concurrent clients, or an open loop at a fixed rate (--rate)."
        ),
    )
    parser.add_argument(
        "-c", "--concurrent", dest="concurrency", type=_positive_int, default=5, metavar="N",
        help="concurrent clients (open loop: most requests in flight); default 5",
    )  # fmt: skip
    parser.add_argument(
        "--target", dest="targets", action="append", metavar="URL",
        help="node base URL, repeatable; requests go round-robin. "
        "Default: the workshop's nodes on 127.0.0.1:5001-5003",
    )  # fmt: skip
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument(
        "--requests", type=_positive_int, metavar="N",
        help="requests to send (per sweep level); default 50",
    )  # fmt: skip
    stop.add_argument(
        "--duration", dest="duration_s", type=_positive_number, metavar="S",
        help="run for S seconds instead of a request count",
    )  # fmt: skip
    parser.add_argument(
        "--rate", type=_positive_number, metavar="R",
        help="open loop: R requests/s on a fixed schedule, latency from each intended start",
    )  # fmt: skip
    parser.add_argument("--path", default=DEFAULT_PATH, help="endpoint to load; default /work")
    parser.add_argument(
        "--timeout", dest="timeout_s", type=_positive_number, default=30.0, metavar="S",
        help="per-request timeout in seconds; default 30",
    )  # fmt: skip
    parser.add_argument(
        "--processes", type=_positive_int, default=1, metavar="P",
        help="spread the clients over P processes; default 1",
    )  # fmt: skip
    parser.add_argument(
        "--slo-p99-ms", dest="slo_p99_ms", type=_positive_number, default=5000.0, metavar="MS",
        help="p99 latency past which the verdict is Crashed; default 5000",
    )  # fmt: skip
    parser.add_argument(
        "--sweep", type=_levels, metavar="LEVELS",
        help="concurrency levels to run in order, e.g. 1,5,10,20; stops after the first "
        "level that is not OK",
    )  # fmt: skip
    parser.add_argument(
        "--calibrate", type=_non_negative_int, default=0, metavar="N",
        help="N sequential requests first, to measure the service time",
    )  # fmt: skip
    parser.add_argument(
        "--generation", type=_non_negative_int, metavar="G",
        help="the NodeLab spec generation this run measures (goes into the report)",
    )  # fmt: skip
    parser.add_argument(
        "--expand-dns", action="store_true",
        help="target every address each host resolves to (the pods of a headless Service)",
    )  # fmt: skip
    parser.add_argument(
        "--fresh-connections", action="store_true",
        help="open a new connection per request (spreads the load over a node's workers); "
        "default: keep-alive",
    )  # fmt: skip
    parser.add_argument(
        "--deadline", dest="deadline_s", type=_positive_number, metavar="S",
        help="cut each run (sweep level) short after S seconds; default derived from the "
        "stop condition and the timeout",
    )  # fmt: skip
    parser.add_argument(
        "--json", dest="json_path", metavar="FILE", help="write the JSON report ('-': stdout)"
    )
    parser.add_argument(
        "--report-to", type=_report_to, metavar="NAMESPACE/NAME",
        help="merge the report into status.lastRun of that NodeLab",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no tables")
    return parser


def parse(argv: Sequence[str]) -> tuple[LoadPlan, CliOptions]:
    """Flags -> (plan, options). Raises :class:`UsageError` naming the flag on bad input."""
    args = build_parser().parse_args(list(argv))
    try:
        plan = LoadPlan(
            targets=tuple(args.targets) if args.targets else DEFAULT_TARGETS,
            path=args.path,
            concurrency=args.concurrency,
            requests=args.requests,
            duration_s=args.duration_s,
            rate=args.rate,
            timeout_s=args.timeout_s,
            processes=args.processes,
            slo_p99_ms=args.slo_p99_ms,
            sweep=args.sweep,
            calibrate=args.calibrate,
            generation=args.generation,
            expand_dns=args.expand_dns,
            fresh_connections=args.fresh_connections,
            deadline_s=args.deadline_s,
        )
    except PlanError as exc:
        raise UsageError(f"argument {FLAGS.get(exc.field, exc.field)}: {exc.message}") from None
    options = CliOptions(json_path=args.json_path, report_to=args.report_to, quiet=args.quiet)
    return plan, options


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def build_argv(
    plan: LoadPlan,
    *,
    json_path: str | None = None,
    report_to: str | None = None,
    quiet: bool = False,
) -> list[str]:
    """Render ``plan`` (and output options) as ``nodelab load`` flags; ``parse`` inverts it."""
    argv = ["--concurrent", str(plan.concurrency)]
    for target in plan.targets:
        argv += ["--target", target]
    if plan.duration_s is not None:
        argv += ["--duration", _number(plan.duration_s)]
    else:
        argv += ["--requests", str(plan.requests)]
    if plan.rate is not None:
        argv += ["--rate", _number(plan.rate)]
    argv += [
        "--path", plan.path,
        "--timeout", _number(plan.timeout_s),
        "--processes", str(plan.processes),
        "--slo-p99-ms", _number(plan.slo_p99_ms),
    ]  # fmt: skip
    if plan.sweep is not None:
        argv += ["--sweep", ",".join(str(level) for level in plan.sweep)]
    if plan.calibrate:
        argv += ["--calibrate", str(plan.calibrate)]
    if plan.generation is not None:
        argv += ["--generation", str(plan.generation)]
    if plan.expand_dns:
        argv.append("--expand-dns")
    if plan.fresh_connections:
        argv.append("--fresh-connections")
    if plan.deadline_s is not None:
        argv += ["--deadline", _number(plan.deadline_s)]
    if json_path is not None:
        argv += ["--json", json_path]
    if report_to is not None:
        argv += ["--report-to", report_to]
    if quiet:
        argv.append("--quiet")
    return argv


def _write_json(report: dict[str, Any], path: str) -> None:
    text = json.dumps(report, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(path)
    # Write-then-rename: a reader never sees half a report.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nodelab load``; 0 on a completed run (whatever its verdict), 2 on bad input,
    1 when the run or the report could not be completed."""
    try:
        plan, options = parse(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        build_parser().print_usage(sys.stderr)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0

    from rich.console import Console

    from loadgen import render, reporter, runner
    from loadgen.processes import WorkerError

    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
    errors = Console(stderr=True)
    progress = None
    if not options.quiet and sys.stderr.isatty():
        progress = render.RichProgress(errors)
    try:
        report = runner.run(plan, progress=progress)
    except WorkerError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    if not options.quiet:
        # With the JSON on stdout, the tables go to stderr so stdout stays parseable.
        console = errors if options.json_path == "-" else Console()
        console.print(render.report_tables(report))
    if options.json_path is not None:
        try:
            _write_json(report, options.json_path)
        except OSError as exc:
            print(f"{PROG}: cannot write --json {options.json_path}: {exc}", file=sys.stderr)
            return 1
    if options.report_to is not None:
        try:
            reporter.send_report(report, options.report_to)
        except reporter.ReportError as exc:
            print(f"{PROG}: --report-to: {exc}", file=sys.stderr)
            return 1
    return 0
