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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from loadgen.plan import DEFAULT_REQUESTS, LoadPlan, PlanError

__all__ = ["FLAGS", "CliOptions", "UsageError", "build_argv", "build_parser", "main", "parse"]

PROG = "nodelab load"

T = TypeVar("T")


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


def _checked(parse: Callable[[str], T], ok: Callable[[T], bool], what: str) -> Callable[[str], T]:
    """An argparse type: ``parse`` the text and keep it if ``ok``; else say ``what``."""

    def convert(text: str) -> T:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
        return value

    return convert


def _levels(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


_positive_int = _checked(int, lambda value: value > 0, "must be a positive integer")
_non_negative_int = _checked(int, lambda value: value >= 0, "must be zero or a positive integer")
_positive_number = _checked(
    float, lambda value: math.isfinite(value) and value > 0, "must be a positive number"
)
_sweep_levels = _checked(
    _levels,
    lambda levels: bool(levels) and all(level > 0 for level in levels),
    "expected comma-separated positive concurrency levels like 1,5,10,20",
)


def _report_to(text: str) -> str:
    from loadgen.reporter import parse_report_to

    try:
        parse_report_to(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _comma_separated(levels: tuple[int, ...]) -> str:
    return ",".join(str(level) for level in levels)


@dataclass(frozen=True)
class _Flag:
    """One flag: the field it sets and how it is read (``convert``) and written (``show``)."""

    field: str  # a LoadPlan field, or a CliOptions one (``output``)
    flag: str
    help: str  # "{default}" stands for the field's default, as ``show`` writes it
    convert: Callable[[str], Any] | None = str  # None: a switch, set by the flag alone
    show: Callable[[Any], str] = str
    metavar: str | None = None
    short: str | None = None
    repeated: bool = False  # one flag per item of a tuple
    exclusive: bool = False  # one of the mutually exclusive stop conditions
    always: bool = False  # written even when the value is the default (argv a person reads)
    output: bool = False  # a CliOptions field

    def argv(self, value: Any) -> list[str]:
        """``value`` as flags."""
        if self.convert is None:
            return [self.flag] if value else []
        if self.repeated:
            return [arg for item in value for arg in (self.flag, self.show(item))]
        return [self.flag, self.show(value)]


# Every flag of ``nodelab load``, spelled here only: the parser, parse() and build_argv() all
# come from this table, in this order (build_argv's output reads as the parser lists them).
_TABLE: tuple[_Flag, ...] = (
    _Flag(
        "concurrency", "--concurrent", "concurrent clients (open loop: most requests in "
        "flight); default {default}", _positive_int, metavar="N", short="-c", always=True,
    ),
    _Flag(
        "targets", "--target", "node base URL, repeatable; requests go round-robin. "
        "Default: the workshop's nodes on 127.0.0.1:5001-5003",
        metavar="URL", repeated=True, always=True,
    ),
    _Flag(
        "requests", "--requests", f"requests to send (per sweep level); default {DEFAULT_REQUESTS}",
        _positive_int, metavar="N", exclusive=True,
    ),
    _Flag(
        "duration_s", "--duration", "run for S seconds instead of a request count",
        _positive_number, _number, metavar="S", exclusive=True,
    ),
    _Flag(
        "rate", "--rate", "open loop: R requests/s on a fixed schedule, latency from each "
        "intended start", _positive_number, _number, metavar="R",
    ),
    _Flag("path", "--path", "endpoint to load; default {default}", always=True),
    _Flag(
        "timeout_s", "--timeout", "per-request timeout in seconds; default {default}",
        _positive_number, _number, metavar="S", always=True,
    ),
    _Flag(
        "processes", "--processes", "spread the clients over P processes; default {default}",
        _positive_int, metavar="P", always=True,
    ),
    _Flag(
        "slo_p99_ms", "--slo-p99-ms", "p99 latency past which the verdict is Crashed; default "
        "{default}", _positive_number, _number, metavar="MS", always=True,
    ),
    _Flag(
        "sweep", "--sweep", "concurrency levels to run in order, e.g. 1,5,10,20; stops after "
        "the first level that is not OK", _sweep_levels, _comma_separated, metavar="LEVELS",
    ),
    _Flag(
        "calibrate", "--calibrate", "N sequential requests first, to measure the service time",
        _non_negative_int, metavar="N",
    ),
    _Flag(
        "generation", "--generation", "the NodeLab spec generation this run measures (goes "
        "into the report)", _non_negative_int, metavar="G",
    ),
    _Flag(
        "expand_dns", "--expand-dns", "target every address each host resolves to (the pods "
        "of a headless Service)", None,
    ),
    _Flag(
        "fresh_connections", "--fresh-connections", "open a new connection per request "
        "(spreads the load over a node's workers); default: keep-alive", None,
    ),
    _Flag(
        "deadline_s", "--deadline", "cut each run (sweep level) short after S seconds; default "
        "derived from the stop condition and the timeout", _positive_number, _number,
        metavar="S",
    ),
    _Flag(
        "json_path", "--json", "write the JSON report ('-': stdout)", metavar="FILE", output=True
    ),
    _Flag(
        "report_to", "--report-to", "merge the report into status.lastRun of that NodeLab",
        _report_to, metavar="NAMESPACE/NAME", output=True,
    ),
    _Flag("quiet", "--quiet", "no progress bar and no tables", None, output=True),
)  # fmt: skip

# LoadPlan field -> the flag that sets it, so plan errors name what the user typed.
FLAGS: dict[str, str] = {entry.field: entry.flag for entry in _TABLE if not entry.output}


def _defaults() -> dict[str, Any]:
    return {item.name: item.default for cls in (LoadPlan, CliOptions) for item in fields(cls)}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``nodelab load``."""
    parser = _Parser(
        prog=PROG,
        description=(
            "Flood nodes with requests and report latency, throughput and errors: a closed "
            "loop of N concurrent clients, or an open loop at a fixed rate (--rate)."
        ),
    )
    stop = parser.add_mutually_exclusive_group()
    defaults = _defaults()
    for entry in _TABLE:
        names = [entry.short, entry.flag] if entry.short else [entry.flag]
        # No defaults in the parser: a flag not given leaves the field to LoadPlan/CliOptions.
        help_ = entry.help
        if "{default}" in help_:
            help_ = help_.format(default=entry.show(defaults[entry.field]))
        kwargs: dict[str, Any] = {"dest": entry.field, "default": None, "help": help_}
        if entry.convert is None:
            kwargs["action"] = "store_true"
        else:
            kwargs.update(type=entry.convert, metavar=entry.metavar)
            if entry.repeated:
                kwargs["action"] = "append"
        (stop if entry.exclusive else parser).add_argument(*names, **kwargs)
    return parser


def parse(argv: Sequence[str]) -> tuple[LoadPlan, CliOptions]:
    """Flags -> (plan, options). Raises :class:`UsageError` naming the flag on bad input."""
    args = build_parser().parse_args(list(argv))
    given: dict[bool, dict[str, Any]] = {False: {}, True: {}}
    for entry in _TABLE:
        value = getattr(args, entry.field)
        if value is not None:
            given[entry.output][entry.field] = tuple(value) if entry.repeated else value
    try:
        plan = LoadPlan(**given[False])
    except PlanError as exc:
        raise UsageError(f"argument {FLAGS.get(exc.field, exc.field)}: {exc.message}") from None
    return plan, CliOptions(**given[True])


def build_argv(
    plan: LoadPlan,
    *,
    json_path: str | None = None,
    report_to: str | None = None,
    quiet: bool = False,
) -> list[str]:
    """Render ``plan`` (and output options) as ``nodelab load`` flags; ``parse`` inverts it.

    A flag is written when its value is not the default, and always for the fields a reader
    of the command wants to see (concurrency, targets, path, timeout, processes, SLO).
    """
    options = CliOptions(json_path=json_path, report_to=report_to, quiet=quiet)
    defaults = _defaults()
    argv: list[str] = []
    for entry in _TABLE:
        value = getattr(options if entry.output else plan, entry.field)
        if entry.always or value != defaults[entry.field]:
            argv += entry.argv(value)
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

    from loadgen import reporter, runner
    from loadgen.processes import WorkerError
    from loadgen.progress import RichProgress
    from loadgen.report_tables import report_tables

    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
    errors = Console(stderr=True)
    progress = None
    if not options.quiet and sys.stderr.isatty():
        progress = RichProgress(errors)
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
        console.print(report_tables(report))
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
