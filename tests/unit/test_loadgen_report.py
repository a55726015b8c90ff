"""The load report: verdicts and the JSON contract (docs/contracts.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema
import pytest

from loadgen.accumulators import RunResult, RunStats
from loadgen.health import DownTarget
from loadgen.histogram import decode_histogram
from loadgen.plan import LoadPlan
from loadgen.report import (
    build_report,
    calibration_entry,
    rate_per_second,
    sweep_entry,
    verdict,
)
from loadgen.schema import REPORT_SCHEMA
from loadgen.timestamps import rfc3339

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

# The keys of docs/contracts.md, in its order.
CONTRACT_KEYS = [
    "schemaVersion", "generation", "startedAt", "finishedAt", "mode", "path", "targets",
    "concurrency", "rate", "processes", "balancing", "durationSeconds", "scheduled", "requests",
    "successes",
    "errors", "rps", "latencyMillis", "serviceMillis", "perNode", "targetsDown", "calibration",
    "sweep",
    "breakingConcurrency", "sloP99Millis", "verdict", "histogram",
]  # fmt: skip


@pytest.mark.parametrize(
    ("p99_ms", "errors", "requests", "expected"),
    [
        (100.0, 0, 50, "OK"),
        (5000.0, 0, 50, "OK"),  # at the line is not past it
        (5000.01, 0, 50, "Crashed"),
        (100.0, 1, 100, "OK"),  # 1% is tolerated
        (100.0, 2, 100, "Errors"),
        (9000.0, 50, 100, "Crashed"),  # the workshop's crash is the headline
        (None, 10, 10, "Errors"),  # nothing answered
        (None, 0, 0, "Errors"),
    ],
)
def test_verdict(p99_ms: float | None, errors: int, requests: int, expected: str) -> None:
    assert verdict(p99_ms, errors, requests, 5000.0) == expected


def _result(
    latencies_ms: dict[str, list[float]],
    errors: dict[str, int] | None = None,
    duration: float = 2.0,
) -> RunResult:
    stats = RunStats()
    for node, values in latencies_ms.items():
        for ms in values:
            stats.record_success(f"http://127.0.0.1:500{node}", node, int(ms * 1000), 10_000)
    for kind, count in (errors or {}).items():
        for _ in range(count):
            stats.record_error("http://127.0.0.1:5001", kind)
    return RunResult(stats, T0, T0 + timedelta(seconds=duration), duration)


def _validate(report: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(REPORT_SCHEMA)
    jsonschema.validate(report, REPORT_SCHEMA, format_checker=jsonschema.FormatChecker())
    json.dumps(report, allow_nan=False)  # plain JSON, storable in a status


def test_report_has_exactly_the_contract_keys_and_validates() -> None:
    plan = LoadPlan(targets=("http://127.0.0.1:5001", "http://127.0.0.1:5002"), generation=2)
    report = build_report(plan, _result({"1": [10.0] * 30, "2": [20.0] * 30}, {"timeout": 2}))
    assert list(report) == CONTRACT_KEYS
    _validate(report)
    assert report["schemaVersion"] == 1
    assert report["generation"] == 2
    assert report["mode"] == "closed"
    assert (report["requests"], report["successes"]) == (62, 60)
    assert report["errors"] == {"total": 2, "byKind": {"timeout": 2}}
    assert report["rps"] == 30.0
    assert report["durationSeconds"] == 2.0
    assert report["latencyMillis"]["p50"] == pytest.approx(10.0, rel=1e-3)
    assert report["latencyMillis"]["max"] == pytest.approx(20.0, rel=1e-3)
    # HdrHistogram percentiles are the highest value equivalent to the recorded one (3 digits).
    assert report["serviceMillis"] == {"p50": pytest.approx(10.0, rel=1e-3), "mean": 10.0}
    assert report["sloP99Millis"] == 5000
    assert report["rate"] is None
    assert report["verdict"] == "Errors"  # 2 of 62 failed
    assert report["startedAt"] == "2026-03-01T12:00:00.000Z"
    assert decode_histogram(report["histogram"]).get_total_count() == 60


def test_per_node_rows_sum_to_the_totals() -> None:
    report = build_report(LoadPlan(), _result({"1": [5.0] * 7, "2": [5.0] * 5}, {"connect": 3}))
    rows = report["perNode"]
    assert [row["node"] for row in rows] == ["1", "2"]
    assert sum(row["requests"] for row in rows) == report["requests"] == 15
    assert sum(row["successes"] for row in rows) == report["successes"]
    assert sum(row["errors"] for row in rows) == report["errors"]["total"]
    assert rows[0] == {
        "node": "1",
        "target": "http://127.0.0.1:5001",
        "requests": 10,
        "successes": 7,
        "errors": 3,
        "share": 0.6667,
        "rps": 3.5,
        "latencyMillis": {"p50": 5.0, "p99": 5.0, "max": 5.0},
    }
    assert sum(row["share"] for row in rows) == pytest.approx(1.0, abs=1e-3)


def test_a_run_where_nothing_answered_still_reports() -> None:
    report = build_report(LoadPlan(), _result({}, {"connect": 50}))
    _validate(report)
    assert report["successes"] == 0
    assert report["latencyMillis"]["p99"] == 0.0
    assert report["serviceMillis"] is None
    assert report["verdict"] == "Errors"


def test_open_loop_report() -> None:
    report = build_report(LoadPlan(rate=25.0, requests=50), _result({"1": [1.0] * 50}))
    _validate(report)
    assert (report["mode"], report["rate"]) == ("open", 25)
    assert report["scheduled"] == report["requests"] == 50
    assert report["targetsDown"] == []


def test_requests_the_run_never_sent_are_counted_and_judged() -> None:
    plan = LoadPlan(rate=20.0, duration_s=3.0)
    report = build_report(plan, _result({"1": [1.0] * 15}, {"not_sent": 45}))
    _validate(report)
    assert report["scheduled"] == report["requests"] == 60
    assert report["errors"] == {"total": 45, "byKind": {"not_sent": 45}}
    assert report["verdict"] == "Errors"  # three quarters of the schedule never went out
    assert build_report(LoadPlan(duration_s=3.0), _result({"1": [1.0]}))["scheduled"] is None


def test_a_target_that_went_away_is_reported() -> None:
    result = _result({"1": [1.0] * 20}, {"connect": 4, "down": 40})
    result.stats.record_target_down("http://127.0.0.1:5001", DownTarget(True, 4))
    report = build_report(LoadPlan(duration_s=3.0), result)
    _validate(report)
    assert report["targetsDown"] == [
        {"target": "http://127.0.0.1:5001", "wentAway": True, "failedConnects": 4}
    ]
    assert report["errors"]["byKind"] == {"connect": 4, "down": 40}


def test_crashed_when_p99_passes_the_slo() -> None:
    report = build_report(LoadPlan(slo_p99_ms=100), _result({"1": [50.0] * 90 + [500.0] * 10}))
    assert report["latencyMillis"]["p99"] > 100
    assert report["verdict"] == "Crashed"


def test_sweep_and_breaking_concurrency() -> None:
    slo = 100.0
    rows = [
        sweep_entry(1, _result({"1": [20.0] * 10}), slo),
        sweep_entry(5, _result({"1": [90.0] * 10}), slo),
        sweep_entry(10, _result({"1": [300.0] * 10}), slo),
    ]
    assert [row["verdict"] for row in rows] == ["OK", "OK", "Crashed"]
    assert rows[0] == {
        "concurrency": 1,
        "requests": 10,
        "rps": 5.0,
        "p50Millis": pytest.approx(20.0, rel=1e-3),
        "p99Millis": pytest.approx(20.0, rel=1e-3),
        "verdict": "OK",
    }
    last = LoadPlan(slo_p99_ms=slo).with_concurrency(10)
    report = build_report(
        last, _result({"1": [300.0] * 10}), sweep=rows, started_at=T0 - timedelta(seconds=9)
    )
    _validate(report)
    assert report["breakingConcurrency"] == 10
    assert report["concurrency"] == 10
    assert report["startedAt"] == "2026-03-01T11:59:51.000Z"


def test_a_sweep_that_never_breaks() -> None:
    rows = [sweep_entry(1, _result({"1": [1.0]}), 100.0)]
    report = build_report(LoadPlan(), _result({"1": [1.0]}), sweep=rows)
    assert report["breakingConcurrency"] is None


def test_calibration_entry_is_the_median() -> None:
    # One slow request (a cold worker) does not move it; the histogram keeps 3 digits.
    entry = calibration_entry(_result({"1": [12.0, 40.0, 12.0]}))
    assert entry["requests"] == 3
    assert entry["latencyMillis"] == pytest.approx(12.0, abs=0.02)
    assert entry["serviceMillis"] == pytest.approx(10.0, abs=0.02)
    report = build_report(LoadPlan(), _result({"1": [1.0]}), calibration=entry)
    _validate(report)


def test_calibration_without_service_times() -> None:
    stats = RunStats()
    stats.record_success("http://a", "1", 3000)
    entry = calibration_entry(RunResult(stats, T0, T0, 0.01))
    assert entry["serviceMillis"] is None


def test_rfc3339() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert rfc3339(moment, timespec="milliseconds") == "2026-01-02T03:04:05.678Z"
    assert rfc3339(moment) == "2026-01-02T03:04:05Z"  # as the operator writes conditions
    east = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2026, 1, 2, 5, 4, 5, tzinfo=east)) == "2026-01-02T03:04:05Z"
    assert rfc3339().endswith("Z")


def test_the_tables_say_what_was_not_sent_and_which_target_went_away() -> None:
    from rich.console import Console

    from loadgen.report_tables import report_tables

    result = _result({"1": [1.0] * 15}, {"connect": 3, "not_sent": 42})
    result.stats.record_target_down("http://127.0.0.1:5001", DownTarget(True, 3))
    console = Console(record=True, width=200)
    console.print(report_tables(build_report(LoadPlan(rate=20.0, duration_s=3.0), result)))
    text = console.export_text()
    assert "60 (15 ok) of 60 scheduled, 42 not sent before the run ended" in text
    assert "http://127.0.0.1:5001: went away (answered, then refused), 3 failed connects" in text


def test_rate_per_second() -> None:
    assert rate_per_second(50, 12.3) == 4.07
    assert rate_per_second(5, 0.0) == 0.0
