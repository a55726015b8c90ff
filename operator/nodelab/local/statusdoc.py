"""The NodeLab status a local run writes: the operator's, from the same functions.

Same schema as ``status`` in the CRD (``nodelab.model.crd.spec_schema()``) and the same fields as
the operator writes for the same report (``nodelab.model.run_status``, docs/operator.md's tables):
``phase``, ``observedGeneration``, ``conditions``, ``lastRun`` (the load report, verbatim),
``prediction`` (the capacity model, placed on this machine's shared cores) and ``history``. This
module adds what is the local runtime's own: its fleet answered ``/health``, so it is rolled
out, and the status lives in a JSON file rather than on the API server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loadgen.timestamps import rfc3339
from nodelab.local.phase_run import PhaseResult
from nodelab.model import run_status

__all__ = ["build_status", "read_previous", "write_status"]


def build_status(
    result: PhaseResult, *, previous: Mapping[str, Any] | None = None, now: str | None = None
) -> dict[str, Any]:
    """The whole status after ``result``; ``previous`` (an earlier status) keeps its history.

    A new generation starts its conditions afresh, as the operator's change handler resets them
    (through ``Unknown``) before the run; a rerun of the same generation keeps their times.
    """
    lab = result.lab
    stamp = now or rfc3339()
    before = dict(previous or {})
    conditions = (
        before.get("conditions") if before.get("observedGeneration") == lab.generation else None
    )
    conditions = run_status.with_spec_accepted(conditions, lab, now=stamp)
    conditions = run_status.with_rolled_out(conditions, lab, now=stamp)
    fields = run_status.completed_status(
        lab,
        result.report,
        {**before, "conditions": conditions},
        now=stamp,
        where=result.where,
        io_millis=result.workload.io_millis,
    )
    status = {**fields, "lastRun": result.report}
    order = ("phase", "observedGeneration", "conditions", "lastRun", "prediction", "history")
    return {key: status[key] for key in order if key in status}


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
