"""The local runtime's settings: one frozen dataclass, read once from flags and environment."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nodelab.model.load_plan import CALIBRATION_REQUESTS

__all__ = [
    "DEFAULT_BASE_PORT",
    "LocalSettings",
    "Mode",
    "Tour",
    "add_tour_flags",
    "available_cores",
    "build_parser",
    "default_phases_dir",
    "parse",
    "settings_from_args",
]

Mode = Literal["cpu", "io"]
# Which tour ``nodelab tour`` runs: phases 1-4, phase 5's storms or phase 6's strategies.
Tour = Literal["scaling", "storm", "balancing"]
# The workshop's first node port (module 1, step 1): replica i listens on base + i.
DEFAULT_BASE_PORT = 5001


def available_cores() -> int:
    """CPUs this process (and the nodes it starts) may run on: the affinity mask, not the box."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_phases_dir() -> Path:
    """``manifests/phases`` of the checkout this package runs from (editable install)."""
    return Path(__file__).resolve().parents[3] / "manifests" / "phases"


@dataclass(frozen=True)
class LocalSettings:
    """Everything ``nodelab run|tour|challenge`` needs, fixed at start-up."""

    quick: bool = False
    mode: Mode = "cpu"
    base_port: int = DEFAULT_BASE_PORT
    host: str = "127.0.0.1"
    status_out: Path | None = None
    json_output: bool = False
    out_dir: Path = Path("nodelab-out")
    phases_dir: Path = field(default_factory=default_phases_dir)
    cores: int = field(default_factory=available_cores)
    python: str = sys.executable
    # Seconds for a fleet to answer /health; the per-process part covers 2 loaded cores
    # importing FastAPI in every uvicorn worker at once.
    health_timeout_s: float = 30.0
    health_timeout_per_process_s: float = 1.5
    grace_s: float = 10.0
    calibration_requests: int = CALIBRATION_REQUESTS
    tour: Tour = "scaling"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 1024 <= value <= 65000:
        raise argparse.ArgumentTypeError(f"{value} is outside 1024..65000")
    return value


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The flags every local command shares: ``--quick``, ``--mode``, ``--base-port``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="scale the work down (lower load factor, SLO scaled by the measured service time)",
    )
    parser.add_argument(
        "--mode",
        choices=["cpu", "io"],
        default=os.environ.get("NODELAB_LOCAL_MODE", "cpu"),
        help="cpu: fib(loadFactor) as in the workshop; io: the same time as a wait, "
        "so capacity no longer depends on this machine's cores [NODELAB_LOCAL_MODE]",
    )
    parser.add_argument(
        "--base-port",
        type=_port,
        default=_port(os.environ.get("NODELAB_BASE_PORT", str(DEFAULT_BASE_PORT))),
        help="replica i listens on 127.0.0.1:(base-port + i) [NODELAB_BASE_PORT, 5001]",
    )
    return parser


def add_tour_flags(parser: argparse.ArgumentParser) -> None:
    """``--storm`` and ``--balancing``: which tour runs (at most one; neither: phases 1-4)."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--storm",
        dest="tour",
        action="store_const",
        const="storm",
        help="phase 5: one fault, three retry policies (5a, 5b, 5c) on one lab, side by side",
    )
    which.add_argument(
        "--balancing",
        dest="tour",
        action="store_const",
        const="balancing",
        help="phase 6: one fleet with a slow node, every load-balancing strategy in turn",
    )


def settings_from_args(args: argparse.Namespace) -> LocalSettings:
    """Build the settings from parsed flags (flags a command lacks keep their defaults)."""
    defaults = LocalSettings()
    status_out = getattr(args, "status_out", None)
    tour = getattr(args, "tour", None)
    return LocalSettings(
        quick=bool(args.quick),
        mode="io" if args.mode == "io" else "cpu",
        base_port=int(args.base_port),
        status_out=Path(status_out) if status_out else None,
        json_output=bool(getattr(args, "json", False)),
        out_dir=Path(getattr(args, "out", None) or defaults.out_dir),
        phases_dir=Path(getattr(args, "phases", None) or defaults.phases_dir),
        tour="storm" if tour == "storm" else "balancing" if tour == "balancing" else "scaling",
    )


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[argparse.Namespace, int]:
    """Parse ``argv``; argparse's own exit (2 on bad flags, 0 on --help) becomes a return code."""
    try:
        return parser.parse_args(list(argv)), -1
    except SystemExit as exc:
        return argparse.Namespace(), int(exc.code or 0)
