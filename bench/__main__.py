"""``python -m bench [--quick] [--json FILE] [--rows 1,2,...]``: run the rows, print one table.

Exit codes: 0 when every row was measured (misses are results, not failures), 1 when a row
broke (its line says why), 2 on bad flags, 130 when interrupted (143 on SIGTERM). Every process
a row starts is reaped before the next row begins, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nodelab.local import procs
from nodelab.local.narration import wide_console
from nodelab.local.settings import available_cores

from bench import (
    cluster_row,
    operator_row,
    row_balancing,
    row_client,
    row_health,
    row_latency,
    row_model,
    row_storm,
)
from bench.common import Context, say
from bench.table import Row, counts, render
from bench.wrk import ensure_wrk
from loadgen.timestamps import rfc3339

__all__ = ["DEFAULT_JSON", "main"]

DEFAULT_JSON = Path("nodelab-out/bench.json")
SCHEMA_VERSION = 1

RowRunner = Callable[[Context], list[Row]]
# Row number -> (what it measures, its runner, whether it needs wrk).
ROWS: dict[str, tuple[str, RowRunner, bool]] = {
    "1": ("node /health vs bare Starlette and raw ASGI (wrk)", row_health.run, True),
    "2": ("load generator client CPU and req/s vs raw aiohttp and wrk", row_client.run, True),
    "3": ("latency accuracy vs the true service time and wrk", row_latency.run, True),
    "4": ("capacity model fidelity: quick tour, CPU and I/O modes", row_model.run, False),
    "5": (
        "operator against the emulated API: create, 100 labs, API calls",
        operator_row.run,
        False,
    ),
    "6": (
        "operator in its pod against a real API server: create, Job, 100 labs",
        cluster_row.run,
        False,
    ),
    "7": (
        "balancing: one node of three 5x slower, every strategy vs round-robin and the model",
        row_balancing.run,
        False,
    ),
    "8": (
        "retry storm: phases 5a-5c vs the storm model; storm-path client CPU vs plain",
        row_storm.run,
        False,
    ),
}


def _rows_flag(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [key for key in chosen if key not in ROWS]
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(
            f"rows are {','.join(ROWS)}, comma-separated; got {text!r}"
        )
    return chosen


def build_parser() -> argparse.ArgumentParser:
    """The bench's flags."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="NodeLab benchmarks: every figure a ratio against an anchor measured in the "
        "same run, judged against issue 5's targets. See bench/README.md.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer and shorter rounds (under 3 minutes)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="FILE",
        help=f"where the results go as JSON [{DEFAULT_JSON}]",
    )
    parser.add_argument(
        "--rows",
        type=_rows_flag,
        default=tuple(ROWS),
        metavar="1,2,...",
        help="run only these rows",
    )
    return parser


def _run_rows(ctx: Context, chosen: Sequence[str]) -> list[Row]:
    rows: list[Row] = []
    for key in chosen:
        started = time.monotonic()
        try:
            rows.extend(ROWS[key][1](ctx))
        except Exception as exc:
            # One broken row must not hide the others' figures; the table says what broke.
            say(f"row {key} failed: {type(exc).__name__}: {exc}")
            rows.append(Row.failed(key, ROWS[key][0], "-", "-", f"{type(exc).__name__}: {exc}"))
        say(f"row {key} took {time.monotonic() - started:.0f} s")
    return rows


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write-then-rename: a reader never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(document, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen rows, print the table, write the JSON; see the module docstring."""
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    started_at = datetime.now(UTC)
    started = time.monotonic()
    chosen: tuple[str, ...] = args.rows
    try:
        with procs.exit_on_termination():
            needs_wrk = any(ROWS[key][2] for key in chosen if key in ROWS)
            ctx = Context(quick=args.quick, wrk=ensure_wrk() if needs_wrk else None)
            rows = _run_rows(ctx, chosen)
    except (KeyboardInterrupt, procs.Terminated) as exc:
        procs.reap_all()
        print("bench: interrupted; every process it started is stopped", file=sys.stderr)
        return int(exc.code or 130) if isinstance(exc, procs.Terminated) else 130
    wall_s = time.monotonic() - started
    mode = "quick" if args.quick else "full"
    cores = available_cores()
    tally = counts(rows)
    summary = ", ".join(f"{n} {status}" for status, n in tally.items() if n)
    title = f"NodeLab bench ({mode}) on {cores} cores, {started_at:%Y-%m-%d %H:%M} UTC"
    caption = (
        "ratio = figure / anchor, both measured in this run; result: the ratio against the "
        f"target (info: printed, no target). {summary}; {wall_s:.0f} s. See bench/README.md."
    )
    wide_console().print(render(rows, title, caption))
    document = {
        "schemaVersion": SCHEMA_VERSION,
        "startedAt": rfc3339(started_at),
        "wallSeconds": round(wall_s, 1),
        "mode": mode,
        "cores": cores,
        "python": platform.python_version(),
        "wrk": ctx.wrk,
        "counts": dict(tally),
        "rows": [row.to_json() for row in rows],
    }
    try:
        _write_json(args.json, document)
    except OSError as exc:
        print(f"bench: cannot write --json {args.json}: {exc}", file=sys.stderr)
        return 1
    say(f"results: {args.json}")
    return 1 if tally["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
