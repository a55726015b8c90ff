"""``nodelab operator``: run the kopf operator in-cluster or against the current kubeconfig."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Sequence

import kopf

from nodelab.kube import handlers
from nodelab.kube.settings import OperatorSettings, SettingsError

__all__ = ["build_parser", "build_registry", "main", "run"]


def build_parser() -> argparse.ArgumentParser:
    """The ``nodelab operator`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="nodelab operator",
        description="Run the NodeLab operator (kopf) in-cluster or against the current kubeconfig.",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable; default: NODELAB_WATCH_NAMESPACES or all)",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    """A fresh kopf registry holding the NodeLab handlers."""
    registry = kopf.OperatorRegistry()
    handlers.register(registry, settings)
    return registry


async def run(
    settings: OperatorSettings,
    *,
    memo: kopf.Memo | None = None,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set; tests pass a memo holding a cluster."""
    operator_memo = memo if memo is not None else kopf.Memo()
    operator_memo.lab_settings = settings
    await kopf.operator(
        registry=build_registry(settings),
        memo=operator_memo,
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nodelab operator``; 2 on bad flags or settings."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        settings = OperatorSettings.from_env()
    except SettingsError as exc:
        print(f"nodelab operator: {exc}", file=sys.stderr)
        return 2
    if args.all_namespaces:
        settings = dataclasses.replace(settings, namespaces=())
    elif args.namespace:
        settings = dataclasses.replace(settings, namespaces=tuple(args.namespace))
    kopf.configure(verbose=args.verbose)
    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:
        return 130
    return 0
