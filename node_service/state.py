"""What one worker process holds: its settings, store, work queue, metrics and counters."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from pydantic import JsonValue

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
    pid: int = field(default_factory=os.getpid)
    in_flight: int = 0

    def identity(self) -> dict[str, JsonValue]:
        """Which node and which worker process answered: part of every answer."""
        return {"node": self.settings.node_id, "pid": self.pid, "workers": self.settings.workers}

    def uptime(self) -> float:
        """Seconds since the node (not this worker) started."""
        return time.time() - self.settings.started_at
