"""Results of several local runs as one JSON document (the tour's and the challenge's files)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nodelab.local.phase_run import PhaseResult
from nodelab.local.settings import LocalSettings
from nodelab.local.tables import phase_label

__all__ = ["result_entry", "write_results"]


def result_entry(result: PhaseResult) -> dict[str, Any]:
    """One run: its file, the shape it ran, the work it used, the report and the prediction."""
    workload = result.workload
    return {
        "phase": phase_label(result),
        "file": result.source,
        "replicas": result.node.replicas,
        "workers": result.node.workers,
        "concurrency": result.concurrency,
        "loadFactor": workload.load_factor,
        "ioMillis": workload.io_millis,
        "fileLoadFactor": workload.file_load_factor,
        "sloP99Millis": result.slo_ms,
        "sloScale": round(result.slo_scale, 6),
        "cores": result.cores,
        "notes": list(workload.notes),
        "report": result.report,
        "prediction": result.prediction.to_status(),
    }


def write_results(
    path: Path,
    settings: LocalSettings,
    results: Sequence[PhaseResult],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write every run and the settings they ran with as JSON."""
    document: dict[str, Any] = {
        "mode": settings.mode,
        "quick": settings.quick,
        "cores": settings.cores,
        "runs": [result_entry(r) for r in results],
    }
    document.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
