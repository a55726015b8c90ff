"""The status vocabulary both runtimes write: condition types, phases, and how conditions change.

Conditions follow the Kubernetes API conventions: a list keyed by ``type``, each with
``status`` ("True", "False", "Unknown"), a CamelCase ``reason``, a human ``message``,
``observedGeneration``, and a ``lastTransitionTime`` that moves only when ``status`` changes.
Value in, value out; nothing here talks to the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "AVAILABLE",
    "COMPLETED",
    "DEPLOYING",
    "FAILED",
    "LOADING",
    "LOAD_COMPLETE",
    "PENDING",
    "PHASES",
    "READY",
    "SLO_MET",
    "SPEC_VALID",
    "find_condition",
    "set_condition",
    "slo_condition",
]

SPEC_VALID = "SpecValid"
AVAILABLE = "Available"
LOAD_COMPLETE = "LoadComplete"
SLO_MET = "SLOMet"

PENDING, DEPLOYING, READY, LOADING, COMPLETED, FAILED = (
    "Pending",
    "Deploying",
    "Ready",
    "Loading",
    "Completed",
    "Failed",
)
PHASES = (PENDING, DEPLOYING, READY, LOADING, COMPLETED, FAILED)


def find_condition(
    conditions: Sequence[Mapping[str, Any]] | None, type_: str
) -> dict[str, Any] | None:
    """The condition of ``type_``, or None."""
    for condition in conditions or ():
        if condition.get("type") == type_:
            return dict(condition)
    return None


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """Return ``conditions`` with ``type_`` set; its transition time moves only on a new status."""
    if status not in {"True", "False", "Unknown"}:
        raise ValueError(f"condition status must be True, False or Unknown, got {status!r}")
    previous = find_condition(conditions, type_)
    transition = now
    if previous is not None and previous.get("status") == status:
        transition = previous.get("lastTransitionTime") or now
    updated = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
        "observedGeneration": generation,
    }
    result = [dict(c) for c in conditions or () if c.get("type") != type_]
    result.append(updated)
    order = {t: i for i, t in enumerate((SPEC_VALID, AVAILABLE, LOAD_COMPLETE, SLO_MET))}
    return sorted(result, key=lambda c: order.get(str(c.get("type")), len(order)))


def slo_condition(last_run: Mapping[str, Any]) -> tuple[str, str, str]:
    """(status, reason, message) of SLOMet for a finished run."""
    verdict = last_run.get("verdict")
    latency = last_run.get("latencyMillis") or {}
    p99, slo = latency.get("p99"), last_run.get("sloP99Millis")
    if verdict == "OK":
        return "True", "WithinSLO", f"p99 {p99} ms is within the SLO of {slo} ms"
    if verdict == "Crashed":
        return (
            "False",
            "LatencyAboveSLO",
            (
                f"p99 {p99} ms is past the SLO of {slo} ms: the clients outnumber what the fleet "
                "serves at once, so requests queue"
            ),
        )
    errors = (last_run.get("errors") or {}).get("total")
    return "False", "Errors", f"{errors} of {last_run.get('requests')} requests failed"
