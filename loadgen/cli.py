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

from loadgen.balancing import StrategyError, parse_strategy
from loadgen.plan import DEFAULT_REQUESTS, LoadPlan, PlanError, Trigger
from loadgen.resilience import BreakerSettings, PolicyError, RetryPolicy

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
_ratio = _checked(float, lambda value: 0 <= value <= 1, "must be a number in [0, 1]")
_open_ratio = _checked(float, lambda value: 0 < value <= 1, "must be a number in (0, 1]")
_non_negative_number = _checked(
    float, lambda value: math.isfinite(value) and value >= 0, "must be zero or a positive number"
)
_retry_kind = _checked(
    str,
    lambda value: value in ("none", "immediate", "backoff"),
    "must be none, immediate or backoff",
)
_trigger_mode = _checked(str, lambda value: value in ("slow", "fail"), "must be slow or fail")
_sweep_levels = _checked(
    _levels,
    lambda levels: bool(levels) and all(level > 0 for level in levels),
    "expected comma-separated positive concurrency levels like 1,5,10,20",
)


def _strategy(text: str) -> str:
    try:
        return parse_strategy(text, field="--balancing")
    except StrategyError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


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
    # A field of the plan field's value (RetryPolicy, its BreakerSettings as "breaker.<name>",
    # Trigger): the flags of one value build it together; ``always`` then means "whenever the
    # value is set" (the flag that says it is there).
    part: str | None = None

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
        "targets", "--target", "node base URL, repeatable; requests spread by --balancing. "
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
        "balancing", "--balancing", "which target each request goes to: round-robin, random, "
        "least-outstanding, p2c or peak-ewma; default {default}", _strategy, metavar="STRATEGY",
    ),
    _Flag(
        "retry", "--retry-kind", "storm run: how a failed attempt is retried: none, immediate "
        "(the naive client) or backoff (capped exponential, full jitter); default none",
        _retry_kind, metavar="KIND", part="kind", always=True,
    ),
    _Flag(
        "retry", "--max-attempts", "storm run: attempts per request, the first included "
        "(>= 2 when retrying)", _positive_int, metavar="N", part="max_attempts",
    ),
    _Flag(
        "retry", "--retry-base-ms", "backoff: the first retry waits up to MS; default 100",
        _positive_number, _number, metavar="MS", part="base_millis",
    ),
    _Flag(
        "retry", "--retry-cap-ms", "backoff: no wait is longer than MS; default 2000",
        _positive_number, _number, metavar="MS", part="cap_millis",
    ),
    _Flag(
        "retry", "--retry-budget", "retries at most RATIO of first attempts (0..1) over a "
        "sliding 10 s window, plus one a second; default: no budget", _ratio, _number,
        metavar="RATIO", part="budget_ratio",
    ),
    _Flag(
        "retry", "--honor-retry-after", "wait at least what a 429 / 503's Retry-After asks",
        None, part="honor_retry_after",
    ),
    _Flag(
        "retry", "--breaker-failure-ratio", "a circuit breaker opens when this share of its "
        "last calls failed; default: no breaker", _open_ratio, _number, metavar="RATIO",
        part="breaker.failure_ratio", always=True,
    ),
    _Flag(
        "retry", "--breaker-min-calls", "breaker: calls seen before it may open (its window); "
        "default 20", _positive_int, metavar="N", part="breaker.min_calls",
    ),
    _Flag(
        "retry", "--breaker-open-seconds", "breaker: seconds it stays open before probing; "
        "default 5", _positive_number, _number, metavar="S", part="breaker.open_seconds",
    ),
    _Flag(
        "retry", "--breaker-probes", "breaker: trial calls half-open; default 3",
        _positive_int, metavar="N", part="breaker.probes",
    ),
    _Flag(
        "trigger", "--trigger-start", "storm run: POST a fault window to every target, "
        "starting S seconds into the run", _non_negative_number, _number, metavar="S",
        part="start_s", always=True,
    ),
    _Flag(
        "trigger", "--trigger-duration", "the fault window's length in seconds",
        _positive_number, _number, metavar="S", part="duration_s", always=True,
    ),
    _Flag(
        "trigger", "--trigger-mode", "slow (each /work waits --trigger-extra-ms more) or fail "
        "(answered --trigger-status); default slow", _trigger_mode, metavar="MODE",
        part="mode", always=True,
    ),
    _Flag(
        "trigger", "--trigger-extra-ms", "slow: ms added to each /work", _positive_int,
        metavar="MS", part="extra_millis",
    ),
    _Flag(
        "trigger", "--trigger-status", "fail: the status each /work gets (500 or 503; default "
        "503)", _positive_int, metavar="STATUS", part="status",
    ),
    _Flag(
        "fault_token_file", "--fault-token-file", "file holding the nodes' fault token (the "
        "trigger's Authorization: Bearer)", metavar="FILE",
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

# LoadPlan field -> the flag that sets it (for a value of several flags, the one that says it
# is there), so plan errors name what the user typed.
FLAGS: dict[str, str] = {}
for _entry in _TABLE:
    if not _entry.output and (_entry.part is None or _entry.always):
        FLAGS.setdefault(_entry.field, _entry.flag)
del _entry
# "retry.max_attempts", "trigger.mode", ... -> the flag of that part.
_PART_FLAGS: dict[str, str] = {
    f"{entry.field}.{entry.part}": entry.flag for entry in _TABLE if entry.part is not None
}
# A RetryPolicy names its fields as the spec does (retry.maxAttempts): -> the flag.
_POLICY_FLAGS: dict[str, str] = {
    "retry.kind": "--retry-kind",
    "retry.maxAttempts": "--max-attempts",
    "retry.baseMillis": "--retry-base-ms",
    "retry.capMillis": "--retry-cap-ms",
    "retry.budgetRatio": "--retry-budget",
    "retry.honorRetryAfter": "--honor-retry-after",
    "retry.breaker.failureRatio": "--breaker-failure-ratio",
    "retry.breaker.minCalls": "--breaker-min-calls",
    "retry.breaker.openSeconds": "--breaker-open-seconds",
    "retry.breaker.probes": "--breaker-probes",
}
_BREAKER = "breaker."


def _part_default(field: str, part: str) -> Any:
    if field == "trigger":
        defaults = {item.name: item.default for item in fields(Trigger)}
        return defaults.get(part)
    if part.startswith(_BREAKER):
        cls: type = BreakerSettings
        part = part.removeprefix(_BREAKER)
    else:
        cls = RetryPolicy
    return {item.name: item.default for item in fields(cls)}[part]


def _part_value(value: Any, part: str) -> Any:
    if part.startswith(_BREAKER):
        value = value.breaker
        if value is None:
            return None
        part = part.removeprefix(_BREAKER)
    return getattr(value, part)


def _compose(field: str, parts: dict[str, Any]) -> Any:
    """The plan value that the flags of ``field`` describe together."""
    if field == "trigger":
        if "start_s" not in parts or "duration_s" not in parts:
            missing = "--trigger-start" if "start_s" not in parts else "--trigger-duration"
            given = ", ".join(_PART_FLAGS[f"trigger.{part}"] for part in sorted(parts))
            raise UsageError(f"argument {missing}: a trigger needs it (given: {given})")
        return Trigger(**parts)
    breaker = {
        part.removeprefix(_BREAKER): value
        for part, value in parts.items()
        if part.startswith(_BREAKER)
    }
    policy = {part: value for part, value in parts.items() if not part.startswith(_BREAKER)}
    try:
        if breaker:
            policy["breaker"] = BreakerSettings(**breaker)
        return RetryPolicy(**policy)
    except PolicyError as exc:
        flag = _POLICY_FLAGS.get(exc.field, exc.field)
        message = exc.message
        # The policy speaks the spec's names; the user typed flags.
        for name, other in sorted(_POLICY_FLAGS.items(), key=lambda item: -len(item[0])):
            message = message.replace(name, other)
        raise UsageError(f"argument {flag}: {message}") from None


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
        kwargs: dict[str, Any] = {"dest": _dest(entry), "default": None, "help": help_}
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
    parts: dict[str, dict[str, Any]] = {}
    for entry in _TABLE:
        value = getattr(args, _dest(entry))
        if entry.part is not None:
            # A switch not given is False, not None: only a given flag describes the value.
            if value is not None and value is not False:
                parts.setdefault(entry.field, {})[entry.part] = value
        elif value is not None:
            given[entry.output][entry.field] = tuple(value) if entry.repeated else value
    try:
        for field, described in parts.items():
            given[False][field] = _compose(field, described)
        plan = LoadPlan(**given[False])
    except PlanError as exc:
        flag = FLAGS.get(exc.field) or _PART_FLAGS.get(exc.field, exc.field)
        raise UsageError(f"argument {flag}: {exc.message}") from None
    return plan, CliOptions(**given[True])


def _dest(entry: _Flag) -> str:
    if entry.part is None:
        return entry.field
    return f"{entry.field}__{entry.part.replace('.', '__')}"


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
        if entry.part is not None:
            if value is None:
                continue
            value, default = _part_value(value, entry.part), _part_default(entry.field, entry.part)
            if value is None or not (entry.always or value != default):
                continue
            argv += entry.argv(value)
        elif entry.always or value != defaults[entry.field]:
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
    from loadgen.storm import TriggerRefused

    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
    errors = Console(stderr=True)
    progress = None
    if not options.quiet and sys.stderr.isatty():
        progress = RichProgress(errors)
    try:
        report = runner.run(plan, progress=progress)
    except (WorkerError, TriggerRefused) as exc:
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
