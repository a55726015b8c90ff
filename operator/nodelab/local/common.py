"""What the three local commands share: loading phase files and failing cleanly."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from loadgen.plan import PlanError
from nodelab.local import procs
from nodelab.local.fleet import Fleet, FleetError
from nodelab.local.narration import Narrator
from nodelab.local.settings import LocalSettings
from nodelab.model import spec as nodelab_spec
from nodelab.model import validation

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE", "load_phase", "with_fleet"]

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def load_phase(path: str | Path, prog: str) -> nodelab_spec.NodeLab | None:
    """The validated NodeLab of a phase file, or None after printing why not (exit 2).

    A name no cluster would take (``metadata.name``) is refused here too: the parse checks it.
    """
    try:
        return nodelab_spec.load_phase_file(path)
    except validation.SpecInvalid as exc:
        print(f"{prog}: {path}: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"{prog}: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
    except yaml.YAMLError as exc:
        print(f"{prog}: {path}: {yaml_problem(exc)}", file=sys.stderr)
    except ValueError as exc:  # not UTF-8 text
        print(f"{prog}: {path}: not a YAML phase file: {exc}", file=sys.stderr)
    return None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML syntax error in one line: where (1-based line and column) and what."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f"not valid YAML: {exc}"
    mark = exc.problem_mark
    text = f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {exc.problem}"
    if exc.context and exc.context_mark is not None:
        text += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
    return text


def with_fleet(
    settings: LocalSettings, narrator: Narrator, prog: str, body: Callable[[Fleet], int]
) -> int:
    """Run ``body`` with a fleet; whatever happens, every node is stopped before returning.

    Failures become one clear message and an exit code instead of a traceback.
    """
    try:
        with procs.exit_on_termination(), Fleet(settings, narrator.say) as fleet:
            try:
                return body(fleet)
            finally:
                if fleet.nodes:
                    narrator.say(f"stopping {len(fleet.nodes)} node process group(s)")
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; every node it started is stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except procs.Terminated as exc:
        print(f"{prog}: terminated; every node it started is stopped", file=sys.stderr)
        return int(exc.code or EXIT_FAILED)
    except PlanError as exc:
        print(f"{prog}: the load plan is invalid: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (FleetError, RuntimeError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        print(f"{prog}: every node it started is stopped", file=sys.stderr)
        return EXIT_FAILED
