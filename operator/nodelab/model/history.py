"""``status.history``: one short row per run, one per generation, newest last, bounded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nodelab.model.spec import NodeLab

__all__ = ["HISTORY_LIMIT", "history_row", "merge_history"]

HISTORY_LIMIT = 10


def history_row(lab: NodeLab, last_run: Mapping[str, Any]) -> dict[str, Any]:
    """One short row of ``status.history`` for a finished run of ``lab``'s current spec.

    A storm run's row adds its ``amplification``, ``recoverySeconds`` (absent: it did not
    recover) and ``stormVerdict``; a lab with a slow pool or another strategy than
    round-robin adds its ``balancing`` strategy.
    """
    latency = last_run.get("latencyMillis") or {}
    row: dict[str, Any] = {
        "generation": int(last_run.get("generation") or lab.generation),
        "finishedAt": last_run.get("finishedAt") or "",
        "replicas": lab.spec.node.replicas,
        "workers": lab.spec.node.workers,
        "concurrency": int(last_run.get("concurrency") or lab.spec.load.concurrency),
        "p50Millis": latency.get("p50"),
        "p99Millis": latency.get("p99"),
        "rps": last_run.get("rps"),
        "verdict": last_run.get("verdict"),
    }
    if last_run.get("breakingConcurrency") is not None:
        row["breakingConcurrency"] = int(last_run["breakingConcurrency"])
    storm = last_run.get("storm")
    if isinstance(storm, Mapping):  # phase 5: how the storm went
        row["amplification"] = storm.get("amplification")
        row["recoverySeconds"] = storm.get("recoverySeconds")
        row["stormVerdict"] = storm.get("verdict")
    if lab.spec.node.slow_pool is not None or lab.spec.load.balancing != "round-robin":
        row["balancing"] = last_run.get("balancing") or lab.spec.load.balancing  # phase 6
    # The CRD types these fields; a missing number is left out rather than written as null.
    return {key: value for key, value in row.items() if value is not None}


def merge_history(
    history: Sequence[Mapping[str, Any]] | None, row: Mapping[str, Any], limit: int = HISTORY_LIMIT
) -> list[dict[str, Any]]:
    """Put ``row`` in ``history``: one row per generation (replaced, not repeated), newest last."""
    rows = [dict(r) for r in history or () if r.get("generation") != row.get("generation")]
    rows.append(dict(row))
    rows.sort(key=lambda r: int(r.get("generation") or 0))
    return rows[-limit:]
