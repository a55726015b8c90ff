"""The ``nodelab`` command: one entry point that dispatches to each component's own CLI.

Each subcommand lives in the component that owns it and parses its own flags, so
``nodelab node ...`` and ``python -m node_service ...`` are the same program.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

__all__ = ["SUBCOMMANDS", "main"]

# subcommand -> (module, one-line help). Modules are imported only when chosen:
# `nodelab node` must not pay for kopf and matplotlib at start-up.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "node": ("node_service.cli", "run a node: health, key-value data, simulated work, metrics"),
    "load": ("loadgen.cli", "flood nodes with requests and report latency and throughput"),
    "run": ("nodelab.local.cli_run", "run one phase file on this machine (no cluster)"),
    "tour": ("nodelab.local.cli_tour", "run phases 1-4 on this machine: table and chart"),
    "challenge": (
        "nodelab.local.cli_challenge",
        "the workshop's challenges, answered by measurement",
    ),
    "operator": ("nodelab.kube.main", "run the kopf operator against the current kubeconfig"),
}


def _usage() -> str:
    lines = ["usage: nodelab <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "`nodelab <command> --help` describes each command's flags."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``nodelab <command> ...`` to the command's ``main(argv) -> int``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    command, rest = args[0], args[1:]
    if command not in SUBCOMMANDS:
        print(f"nodelab: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[command][0])
    entry: Callable[[Sequence[str]], int] = module.main
    return entry(rest)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
