"""What one worker process holds: its settings, store, work queue, metrics and counters, and
its protections (token bucket) and view of the node's fault window."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import JsonValue

from node_service.bucket import TokenBucket
from node_service.fault import FaultBoard
from node_service.metrics import NodeMetrics
from node_service.settings import NodeSettings
from node_service.store import Store
from node_service.work import WorkRunner

__all__ = ["WorkerState"]


@dataclass
class WorkerState:
    """Mutable state of one worker process; every request handler of that worker shares it."""

    settings: NodeSettings
    metrics: NodeMetrics
    store: Store
    work: WorkRunner
    bucket: TokenBucket | None = None  # None: no rate limit
    faults: FaultBoard = field(default_factory=FaultBoard)
    # The token of POST /fault (None: no such endpoint); repr=False keeps it out of any log.
    fault_token: str | None = field(default=None, repr=False)
    # Wall clock, epoch seconds: fault windows are compared across processes (node_service.fault).
    clock: Callable[[], float] = time.time
    pid: int = field(default_factory=os.getpid)
    in_flight: int = 0

    def identity(self) -> dict[str, JsonValue]:
        """Which node and which worker process answered: part of every answer."""
        return {"node": self.settings.node_id, "pid": self.pid, "workers": self.settings.workers}

    def uptime(self) -> float:
        """Seconds since the node (not this worker) started."""
        return time.time() - self.settings.started_at
