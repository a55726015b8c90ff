"""The NodeLab status a local run writes: what the Job and the operator would have written.

Same schema as ``status`` in the CRD (``nodelab.model.crd.spec_schema()``): ``phase``,
``observedGeneration``, ``conditions``, ``lastRun`` (the load report, verbatim), ``prediction``
(the capacity model) and ``history`` (one row per run, newest last, at most 10).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loadgen.timestamps import rfc3339
from nodelab.local.phase_run import PhaseResult

__all__ = ["HISTORY_LIMIT", "build_status", "history_row", "read_previous", "write_status"]

HISTORY_LIMIT = 10


def history_row(result: PhaseResult, generation: int) -> dict[str, Any]:
    """One ``status.history`` row: the phase's shape and what it measured."""
    report = result.report
    latency = report.get("latencyMillis") or {}
    row: dict[str, Any] = {
        "generation": generation,
        "finishedAt": report.get("finishedAt") or rfc3339(),
        "replicas": result.node.replicas,
        "workers": result.node.workers,
        "concurrency": result.concurrency,
        "p50Millis": float(latency.get("p50") or 0),
        "p99Millis": float(latency.get("p99") or 0),
        "rps": float(report.get("rps") or 0),
        "verdict": str(report.get("verdict") or "Errors"),
    }
    if report.get("breakingConcurrency") is not None:
        row["breakingConcurrency"] = int(report["breakingConcurrency"])
    return row


def _condition(
    type_: str, ok: bool, reason: str, message: str, generation: int, now: str
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
        "observedGeneration": generation,
    }


def _slo_condition(result: PhaseResult, generation: int, now: str) -> dict[str, Any]:
    verdict = result.report.get("verdict")
    p99 = (result.report.get("latencyMillis") or {}).get("p99")
    if verdict == "OK":
        return _condition(
            "SLOMet", True, "WithinSLO", f"p99 {p99} ms <= {result.slo_ms:g} ms", generation, now
        )
    if verdict == "Crashed":
        return _condition(
            "SLOMet", False, "P99PastSLO", f"p99 {p99} ms > {result.slo_ms:g} ms", generation, now
        )
    errors = (result.report.get("errors") or {}).get("total")
    return _condition("SLOMet", False, "Errors", f"{errors} requests failed", generation, now)


def build_status(
    result: PhaseResult, *, generation: int, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The whole status after ``result``; ``previous`` (an earlier status) keeps its history."""
    now = rfc3339()
    node = result.node
    conditions = [
        _condition("SpecValid", True, "Valid", "the spec passed the CRD's schema and rules",
                   generation, now),
        _condition("Available", True, "NodesHealthy",
                   f"{node.replicas} x {node.workers} workers answered /health on 127.0.0.1",
                   generation, now),
        _condition("LoadComplete", True, "ReportWritten",
                   f"{result.report.get('requests')} requests, verdict "
                   f"{result.report.get('verdict')}", generation, now),
        _slo_condition(result, generation, now),
    ]  # fmt: skip
    history = list((previous or {}).get("history") or [])
    history.append(history_row(result, generation))
    prediction = result.prediction.to_status()
    prediction["sloP99Millis"] = result.slo_ms
    if result.sweep_predictions:
        prediction["sweep"] = [
            {
                "concurrency": level,
                "rps": round(p.throughput_rps, 3),
                "latencyMillis": round(p.latency_ms, 2),
                "p99Millis": round(p.p99_ms, 2),
            }
            for level, p in result.sweep_predictions
        ]
        prediction["breakingConcurrency"] = result.predicted_breaking
    return {
        "phase": "Completed",
        "observedGeneration": generation,
        "conditions": conditions,
        "lastRun": result.report,
        "prediction": prediction,
        "history": history[-HISTORY_LIMIT:],
    }


def read_previous(path: Path) -> dict[str, Any] | None:
    """The status an earlier ``--status-out`` left at ``path``, or None (absent or not one)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("history"), list):
        return None
    return document


def write_status(path: Path, status: Mapping[str, Any]) -> None:
    """Write the status document as JSON (``kubectl get nodelab -o json`` shows it as status)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")
