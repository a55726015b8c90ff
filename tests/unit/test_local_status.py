"""The status a local run writes has the CRD's status schema and the operator's reasons; canned
results, no processes (tests/unit/test_status_parity.py compares it with the operator's)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram
from nodelab.local import statusdoc, workload
from nodelab.local.phase_run import PhaseResult
from nodelab.model import capacity, crd, history, prediction, spec, validation

PHASES = Path(__file__).resolve().parents[2] / "manifests" / "phases"


def encoded_histogram(values_ms: list[float]) -> str:
    histogram = HdrHistogram(1, 3_600_000_000, 3)
    for value in values_ms:
        histogram.record_value(int(value * 1000))
    encoded = histogram.encode()
    return encoded.decode() if isinstance(encoded, bytes) else str(encoded)


def canned_report(
    p50: float, p99: float, rps: float, verdict: str, concurrency: int
) -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "generation": 1,
        "startedAt": "2025-01-01T00:00:00.000Z",
        "finishedAt": "2025-01-01T00:00:05.000Z",
        "mode": "closed",
        "path": "/work",
        "targets": ["http://127.0.0.1:5001"],
        "concurrency": concurrency,
        "rate": None,
        "processes": 1,
        "durationSeconds": 5.0,
        "scheduled": 20,
        "requests": 20,
        "successes": 20,
        "errors": {"total": 0, "byKind": {}},
        "rps": rps,
        "latencyMillis": {
            "min": p50 / 2,
            "p50": p50,
            "p90": p99 * 0.9,
            "p95": p99 * 0.95,
            "p99": p99,
            "max": p99,
            "mean": p50,
        },
        "serviceMillis": {"p50": 20.0, "mean": 20.0},
        "perNode": [],
        "calibration": {"requests": 5, "serviceMillis": 20.0, "latencyMillis": 22.0},
        "sweep": None,
        "breakingConcurrency": None,
        "sloP99Millis": 120,
        "verdict": verdict,
        "histogram": encoded_histogram([p50 / 2, p50, p50, p99 * 0.9, p99]),
    }


def canned_result(
    phase: str = "phase-1-overwhelm.yaml", *, p50: float = 100.0, p99: float = 130.0,
    rps: float = 45.0, verdict: str = "Crashed", generation: int = 1,
) -> PhaseResult:  # fmt: skip
    lab = dataclasses.replace(spec.load_phase_file(PHASES / phase), generation=generation)
    work = workload.Workload(27, 0, 20, None, 35, 0, 27, True, "cpu")
    cal = prediction.Calibration(5, 22.0, 20.0)
    node = lab.spec.node
    concurrency = lab.spec.load.concurrency
    report = canned_report(p50, p99, rps, verdict, concurrency)
    report["generation"] = generation
    return PhaseResult(
        source=str(PHASES / phase),
        lab=lab,
        workload=work,
        calibration=cal,
        slo_ms=120.0,
        slo_scale=0.024,
        cores=2,
        report=report,
        # Canned figures the table tests read (test_local_render); the status recomputes its own.
        prediction=capacity.predict(
            service_ms=22.0,
            cpu_ms=22.0,
            workers=node.workers,
            replicas=node.replicas,
            concurrency=concurrency,
            cores=2,
        ),
    )


def validate_status(status: dict[str, Any]) -> list[validation.FieldError]:
    document = {
        "apiVersion": crd.api_version(),
        "kind": crd.KIND,
        "metadata": {"name": "scaling-lab"},
        "spec": {"node": {}, "load": {}},
        "status": copy.deepcopy(status),
    }
    schema = crd.spec_schema()
    return validation.validate_object(validation.apply_defaults(document, schema), schema)


def test_status_has_the_crd_schema() -> None:
    status = statusdoc.build_status(canned_result())
    assert validate_status(status) == []
    assert status["phase"] == "Completed"
    assert status["observedGeneration"] == 1
    assert {c["type"] for c in status["conditions"]} == {
        "SpecValid", "Available", "LoadComplete", "SLOMet",
    }  # fmt: skip
    slo = next(c for c in status["conditions"] if c["type"] == "SLOMet")
    assert (slo["status"], slo["reason"]) == ("False", "LatencyAboveSLO")
    reasons = {c["type"]: c["reason"] for c in status["conditions"]}
    assert reasons == {
        "SpecValid": "Valid", "Available": "RolledOut", "LoadComplete": "Succeeded",
        "SLOMet": "LatencyAboveSLO",
    }  # fmt: skip
    assert status["lastRun"]["verdict"] == "Crashed"
    assert status["prediction"]["bottleneck"] == "workers"
    assert status["prediction"]["sloP99Millis"] == 120.0
    assert status["history"][-1]["workers"] == 1


def test_history_keeps_the_journey_and_at_most_ten_rows() -> None:
    status: dict[str, Any] | None = None
    for generation in range(1, 13):
        status = statusdoc.build_status(canned_result(generation=generation), previous=status)
    assert status is not None
    assert len(status["history"]) == history.HISTORY_LIMIT
    assert [row["generation"] for row in status["history"]] == list(range(3, 13))
    assert validate_status(status) == []


def test_schema_check_would_catch_a_wrong_field() -> None:
    status = statusdoc.build_status(canned_result())
    status["phase"] = "Finished"
    assert [e.field for e in validate_status(status)] == ["status.phase"]


def test_status_file_round_trip(tmp_path: Path) -> None:
    status = statusdoc.build_status(canned_result(verdict="OK", p99=90.0, generation=4))
    path = tmp_path / "out" / "status.json"
    statusdoc.write_status(path, status)
    again = statusdoc.read_previous(path)
    assert again is not None and again["observedGeneration"] == 4
    assert statusdoc.read_previous(tmp_path / "absent.json") is None


@pytest.mark.parametrize("verdict,reason", [("OK", "WithinSLO"), ("Errors", "Errors")])
def test_slo_condition_follows_the_verdict(verdict: str, reason: str) -> None:
    status = statusdoc.build_status(canned_result(verdict=verdict))
    slo = next(c for c in status["conditions"] if c["type"] == "SLOMet")
    assert slo["reason"] == reason


def test_a_rerun_keeps_transition_times_and_a_new_generation_starts_afresh() -> None:
    first = statusdoc.build_status(canned_result(), now="2025-01-01T00:00:00Z")
    rerun = statusdoc.build_status(canned_result(), previous=first, now="2025-01-01T00:01:00Z")
    times = {c["type"]: c["lastTransitionTime"] for c in rerun["conditions"]}
    assert set(times.values()) == {"2025-01-01T00:00:00Z"}
    assert [row["generation"] for row in rerun["history"]] == [1]  # replaced, not repeated
    later = statusdoc.build_status(
        canned_result(generation=2), previous=rerun, now="2025-01-01T00:02:00Z"
    )
    assert {c["lastTransitionTime"] for c in later["conditions"]} == {"2025-01-01T00:02:00Z"}
    assert {c["observedGeneration"] for c in later["conditions"]} == {2}
    assert [row["generation"] for row in later["history"]] == [1, 2]
