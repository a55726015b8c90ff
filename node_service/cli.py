"""``nodelab node`` / ``python -m node_service``: parse settings once, then serve with uvicorn."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence

from node_service.fault import FAULT_BOARD_ENV
from node_service.permits import PERMITS_ENV, PermitDesk
from node_service.scratch import OwnedDir
from node_service.settings import NodeSettings, parse_settings, settings_to_env

__all__ = ["APP_FACTORY", "main", "serve"]

APP_FACTORY = "node_service.app:create_app_from_env"
# Duplicated from node_service.metrics on purpose: importing that module imports prometheus_client,
# which picks its value storage from this variable at import time, so it must be set first.
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def _stop_signals_end_cleanly() -> Iterator[None]:
    # After its graceful shutdown a single-process uvicorn re-raises the signal it caught, which
    # under the default handler kills the process (exit -15, or a KeyboardInterrupt traceback).
    # A no-op handler here makes a graceful stop exit 0, as it does with several workers.
    stops = (signal.SIGTERM, signal.SIGINT)
    saved = {sig: signal.signal(sig, lambda *_: None) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def serve(settings: NodeSettings) -> int:
    """Run the node until SIGTERM/SIGINT; in-flight requests get ``graceful_timeout`` to finish."""
    import uvicorn

    from node_service.protocol import BoundedHttpToolsProtocol

    env = settings_to_env(settings)
    connections = settings.connections
    # A private directory for the workers' metric files, so one scrape sees the whole node.
    # tempfile honours TMPDIR and falls back to /tmp: the writable emptyDir under Kubernetes'
    # readOnlyRootFilesystem. Skipped only if prometheus_client is already loaded in this process
    # (embedding), where its storage can no longer switch to files. Making it removes those a
    # SIGKILLed node left behind (node_service.scratch).
    metrics_dir: OwnedDir | None = None
    if settings.workers > 1 or "prometheus_client" not in sys.modules:
        metrics_dir = OwnedDir("nodelab-metrics-")
        env[_MULTIPROC_ENV] = metrics_dir.path
    # Several workers take their turns from one desk in this process (node_service.permits).
    desk: PermitDesk | None = None
    permits_dir: OwnedDir | None = None
    if settings.workers > 1:
        permits_dir = OwnedDir("nodelab-permits-")
        desk = PermitDesk(os.path.join(permits_dir.path, "desk.sock"), settings.workers)
        desk.start()
        env[PERMITS_ENV] = desk.path
    # A POST /fault lands in one worker; its window reaches the others through a file here
    # (node_service.fault). Every worker reads it, so it lives as long as the node does.
    fault_dir: OwnedDir | None = None
    if settings.fault_token_file is not None:
        fault_dir = OwnedDir("nodelab-fault-")
        env[FAULT_BOARD_ENV] = os.path.join(fault_dir.path, "window.json")
    try:
        with _environ(env), _stop_signals_end_cleanly():
            uvicorn.run(
                APP_FACTORY,
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=settings.workers,
                loop="uvloop",
                http=BoundedHttpToolsProtocol,  # httptools, with bounded request headers
                lifespan="on",
                access_log=settings.access_log,
                timeout_graceful_shutdown=settings.graceful_timeout,
                timeout_keep_alive=connections.keep_alive_timeout,
                # uvicorn answers 503 once it holds `limit_concurrency` connections, counting
                # the one asking: one more lets `max_connections` connections be served.
                limit_concurrency=connections.max_connections + 1,
            )
    finally:
        if desk is not None:
            desk.stop()
        if permits_dir is not None:
            permits_dir.remove()
        if metrics_dir is not None:
            metrics_dir.remove()
        if fault_dir is not None:
            fault_dir.remove()
    return 0


def main(argv: Sequence[str]) -> int:
    """Entry point of ``nodelab node``; returns the exit code, never raises ``SystemExit``.

    Bad flags or environment values print a message naming the flag and return 2; ``--help``
    returns 0.
    """
    try:
        return serve(parse_settings(argv))
    except SystemExit as exc:  # argparse, and uvicorn when it cannot start, exit this way
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
