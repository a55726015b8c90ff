"""The operator's settings: one frozen object, read once from the environment.

Every field has a default, so ``OperatorSettings()`` is a working configuration; tests build
their own with small intervals. ``from_env`` is the only place that reads ``NODELAB_*``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from nodelab.model.load_plan import CALIBRATION_REQUESTS

__all__ = ["OperatorSettings", "SettingsError"]


class SettingsError(ValueError):
    """An environment variable holds a value the operator cannot use; the message names it."""


@dataclass(frozen=True)
class OperatorSettings:
    """How the operator builds children and how often it looks at them."""

    # Image of the node and of the load Job (one image runs every component).
    image: str = "nodelab:dev"
    # Images a NodeLab's spec.node.image may name besides ``image``, exactly as written: whoever
    # may create a NodeLab runs its node image in the namespace, so by default only the operator's.
    allowed_images: tuple[str, ...] = ()
    image_pull_policy: str = "IfNotPresent"
    # Port the node listens on inside its pod; the Services expose the same port.
    node_port: int = 8080
    # Seconds between two looks at a lab by the reconcile timer, a safety net: a change of the
    # lab's Deployment, node pods or load Jobs moves it at once (kopf watches them). The timer
    # catches what no watched child announces: an object in the way that went away, a report
    # that never came (NODELAB_REPORT_GRACE), a step that failed and is due again.
    reconcile_interval: float = 30.0
    # Finished load Jobs kept per lab (the current generation's Job is never deleted).
    keep_succeeded_jobs: int = 3
    keep_failed_jobs: int = 5
    # Bound on one load Job; past it Kubernetes stops the Job (reason DeadlineExceeded).
    load_deadline_seconds: int = 1800
    # Calibration requests the load Job sends alone before the run (status.prediction).
    calibrate_requests: int = CALIBRATION_REQUESTS
    # How long a succeeded Job may take to appear in status.lastRun before the run is Failed.
    report_grace_seconds: float = 60.0
    # Resources of the load generator pod, per load generator process.
    load_cpu_request: str = "250m"
    load_cpu_limit: str = "1"
    load_memory: str = "256Mi"
    # Namespaces to watch; empty means every namespace.
    namespaces: tuple[str, ...] = ()
    # Optional kopf liveness endpoint, e.g. http://0.0.0.0:8081/healthz.
    liveness_endpoint: str | None = None

    def __post_init__(self) -> None:
        if self.reconcile_interval <= 0:
            raise SettingsError("reconcile_interval must be positive")
        for name in ("node_port", "load_deadline_seconds"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        for name in ("keep_succeeded_jobs", "keep_failed_jobs", "calibrate_requests"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must be zero or positive")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """Read ``NODELAB_*`` variables over the defaults; bad values raise SettingsError."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in fields(cls):
            variable = _ENV.get(field.name)
            raw = env.get(variable) if variable else None
            if raw is None or raw == "":
                continue
            values[field.name] = _convert(variable or field.name, field.name, raw)
        return cls(**values)  # type: ignore[arg-type]


# field -> environment variable
_ENV = {
    "image": "NODELAB_IMAGE",
    "allowed_images": "NODELAB_ALLOWED_IMAGES",
    "image_pull_policy": "NODELAB_IMAGE_PULL_POLICY",
    "node_port": "NODELAB_NODE_PORT",
    "reconcile_interval": "NODELAB_RECONCILE_INTERVAL",
    "keep_succeeded_jobs": "NODELAB_KEEP_SUCCEEDED_JOBS",
    "keep_failed_jobs": "NODELAB_KEEP_FAILED_JOBS",
    "load_deadline_seconds": "NODELAB_LOAD_DEADLINE",
    "calibrate_requests": "NODELAB_CALIBRATE",
    "report_grace_seconds": "NODELAB_REPORT_GRACE",
    "namespaces": "NODELAB_WATCH_NAMESPACES",
    "liveness_endpoint": "NODELAB_OPERATOR_LIVENESS",
}
_INTS = {
    "node_port",
    "keep_succeeded_jobs",
    "keep_failed_jobs",
    "load_deadline_seconds",
    "calibrate_requests",
}
_FLOATS = {"reconcile_interval", "report_grace_seconds"}
_LISTS = {"namespaces", "allowed_images"}  # comma-separated


def _convert(variable: str, name: str, raw: str) -> object:
    try:
        if name in _INTS:
            return int(raw)
        if name in _FLOATS:
            return float(raw)
    except ValueError:
        raise SettingsError(f"{variable}: not a number: {raw!r}") from None
    if name in _LISTS:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw
