"""Building the node's ASGI app: ``create_app(settings)``, and the factory uvicorn workers call."""

from __future__ import annotations

import os

from starlette.types import ASGIApp

from node_service.api import build_api
from node_service.bucket import TokenBucket
from node_service.fault import FAULT_BOARD_ENV, FaultBoard
from node_service.front import Front
from node_service.metrics import MULTIPROC_ENV, NodeMetrics
from node_service.permits import PERMITS_ENV, NodePermits
from node_service.settings import NodeSettings, read_fault_token, settings_from_env
from node_service.state import WorkerState
from node_service.store import Store
from node_service.work import WorkRunner

__all__ = ["create_app", "create_app_from_env"]


def create_app(
    settings: NodeSettings,
    *,
    multiproc_dir: str | None = None,
    permits_socket: str | None = None,
    fault_board: str | None = None,
) -> ASGIApp:
    """The node's ASGI app for one worker process.

    ``multiproc_dir`` is the Prometheus multiprocess directory shared by the node's workers, or
    None for a single in-process registry; ``permits_socket`` the node's permit desk shared by
    its workers, or None for one worker; ``fault_board`` the file of the node's fault window
    shared by its workers, or None to keep it in this process.
    """
    protection = settings.protection
    permits = NodePermits(permits_socket) if permits_socket else None
    metrics = NodeMetrics(multiproc_dir)
    metrics.service_factor.set(settings.service_factor)
    metrics.extra_millis.set(settings.extra_millis)
    state = WorkerState(
        settings=settings,
        metrics=metrics,
        store=Store(settings.limits),
        work=WorkRunner(
            permits,
            max_queue=protection.max_queue,
            service_factor=settings.service_factor,
            extra_millis=settings.extra_millis,
        ),
        bucket=(
            TokenBucket(protection.rate_limit, protection.burst) if protection.rate_limit else None
        ),
        faults=FaultBoard(fault_board),
        fault_token=(
            read_fault_token(settings.fault_token_file) if settings.fault_token_file else None
        ),
    )
    return Front(state, build_api(state))


def create_app_from_env() -> ASGIApp:
    """Uvicorn's factory (``node_service.app:create_app_from_env``): settings from environment."""
    return create_app(
        settings_from_env(),
        multiproc_dir=os.environ.get(MULTIPROC_ENV),
        permits_socket=os.environ.get(PERMITS_ENV),
        fault_board=os.environ.get(FAULT_BOARD_ENV),
    )
