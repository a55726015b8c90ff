"""``status.prediction``: the capacity model fed with the run's calibrated service time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodelab.model import capacity
from nodelab.model.spec import NodeLab

__all__ = ["prediction"]


def prediction(lab: NodeLab, last_run: Mapping[str, Any]) -> dict[str, Any] | None:
    """``status.prediction`` from the calibration of ``last_run``, or None without one."""
    calibration = last_run.get("calibration") or {}
    service_ms = calibration.get("serviceMillis")
    if not service_ms or float(service_ms) <= 0:
        return None
    node, load = lab.spec.node, lab.spec.load
    service = float(service_ms)
    # The node's ioMillis is waiting, not computing; with none, all the service time is CPU.
    cpu_ms = service if node.io_millis == 0 else max(service - node.io_millis, 0.0)
    cores = node.replicas * node.pod_cpu_millicores / 1000
    result = capacity.predict(
        service_ms=service,
        cpu_ms=cpu_ms,
        workers=node.workers,
        replicas=node.replicas,
        concurrency=load.concurrency,
        cores=cores,
    ).to_status()
    result["generation"] = lab.generation
    return result
