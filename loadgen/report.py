"""The load report (docs/contracts.md, docs/load-report.md): pure functions of run results.

The report is camelCase JSON because it is stored verbatim as ``status.lastRun`` of a NodeLab.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram

from loadgen.accumulators import RunResult
from loadgen.histogram import LatencySummary, encode_histogram, summarize
from loadgen.plan import LoadPlan
from loadgen.rows import down_rows, node_rows
from loadgen.timeline import storm_figures
from loadgen.timestamps import rfc3339

if TYPE_CHECKING:
    from loadgen.storm import StormRun

__all__ = [
    "ERROR_RATIO_LIMIT",
    "SCHEMA_VERSION",
    "STORM_VERDICTS",
    "VERDICTS",
    "build_report",
    "calibration_entry",
    "rate_per_second",
    "storm_entries",
    "storm_verdict",
    "sweep_entry",
    "verdict",
]

SCHEMA_VERSION = 1
ERROR_RATIO_LIMIT = 0.01
VERDICTS = ("OK", "Crashed", "Errors")
STORM_VERDICTS = ("Recovered", "DidNotRecover", "NoTrigger")


def verdict(p99_ms: float | None, errors: int, requests: int, slo_p99_ms: float) -> str:
    """``Crashed`` when p99 passes the SLO (the workshop's "crashed"), ``Errors`` when more
    than 1% of requests failed (or none succeeded), else ``OK``.

    Crashed wins over Errors: an overwhelmed node that also times out is still the
    workshop's crash, and its latency is the headline.
    """
    if p99_ms is not None and p99_ms > slo_p99_ms:
        return "Crashed"
    if requests == 0 or p99_ms is None or errors / requests > ERROR_RATIO_LIMIT:
        return "Errors"
    return "OK"


def storm_verdict(has_trigger: bool, recovered: bool) -> str:
    """``storm.verdict``: ``NoTrigger`` without a fault window, else whether goodput came back
    after it (``Recovered``) or stayed down (``DidNotRecover``: the metastable storm)."""
    if not has_trigger:
        return "NoTrigger"
    return "Recovered" if recovered else "DidNotRecover"


def storm_entries(storm: StormRun) -> dict[str, Any]:
    """The storm run's own report fields: ``timeline``, ``storm``, ``retry``, ``trigger``."""
    trigger = storm.trigger
    figures = storm_figures(
        storm.timeline.seconds,
        None if trigger is None else trigger.start_s,
        None if trigger is None else trigger.end_s,
    )
    width, points = storm.timeline.points()
    summary: dict[str, Any] = {
        **figures.to_report(),
        "verdict": storm_verdict(trigger is not None, figures.recovered),
        "triggerWindow": None
        if trigger is None
        else {"startSeconds": _number(trigger.start_s), "endSeconds": _number(trigger.end_s)},
        "offered": storm.offered,
        "attempts": storm.attempts,
        "retries": storm.retries,
        "attemptErrors": dict(sorted(storm.attempt_errors.items())),
        "inFlightCap": storm.in_flight_cap,
        "peakInFlight": storm.peak_in_flight,
    }
    if storm.breaker_transitions is not None:
        summary["breaker"] = {
            "transitions": storm.breaker_transitions,
            "rejected": storm.breaker_rejected,
        }
    if storm.budget_denied is not None:
        summary["budgetDenied"] = storm.budget_denied
    return {
        "timeline": {"secondsPerPoint": width, "points": points},
        "storm": summary,
        "retry": storm.policy.to_mapping(),
        "trigger": None if trigger is None else trigger.to_report(),
    }


def rate_per_second(count: int, duration_s: float) -> float:
    """``count / duration_s`` rounded to 2 decimals; 0 for an empty or instant run."""
    if duration_s <= 0 or not math.isfinite(duration_s):
        return 0.0
    return round(count / duration_s, 2)


def _number(value: float) -> int | float:
    # 5000.0 reads better as 5000 in a status; fractional values stay as they are.
    return int(value) if float(value).is_integer() else value


def _latency(summary: LatencySummary | None) -> dict[str, float]:
    if summary is None:
        return dict.fromkeys(("min", "p50", "p90", "p95", "p99", "max", "mean"), 0.0)
    return {
        "min": summary.min,
        "p50": summary.p50,
        "p90": summary.p90,
        "p95": summary.p95,
        "p99": summary.p99,
        "max": summary.max,
        "mean": summary.mean,
    }


def _level_verdict(
    result: RunResult, slo_p99_ms: float, latency: HdrHistogram | None = None
) -> tuple[LatencySummary | None, str]:
    stats = result.stats
    summary = summarize(latency if latency is not None else stats.latency())
    return summary, verdict(
        summary.p99 if summary else None, stats.error_count, stats.requests, slo_p99_ms
    )


def sweep_entry(concurrency: int, result: RunResult, slo_p99_ms: float) -> dict[str, Any]:
    """One row of ``sweep``: a concurrency level and how it went."""
    summary, level_verdict = _level_verdict(result, slo_p99_ms)
    return {
        "concurrency": concurrency,
        "requests": result.stats.requests,
        "rps": rate_per_second(result.stats.successes, result.duration_s),
        "p50Millis": summary.p50 if summary else 0.0,
        "p99Millis": summary.p99 if summary else 0.0,
        "verdict": level_verdict,
    }


def calibration_entry(result: RunResult) -> dict[str, Any]:
    """``calibration``: median latency and median server-side service time of sequential
    requests (the median: one cold or preempted request does not move it).

    Sequential requests never queue, so their latency is the service time plus the network
    and framework overhead; ``serviceMillis`` is null when the answers do not carry it.
    """
    latency = summarize(result.stats.latency())
    service = summarize(result.stats.service)
    return {
        "requests": result.stats.requests,
        "serviceMillis": service.p50 if service else None,
        "latencyMillis": latency.p50 if latency else None,
    }


def build_report(
    plan: LoadPlan,
    result: RunResult,
    *,
    started_at: datetime | None = None,
    calibration: dict[str, Any] | None = None,
    sweep: list[dict[str, Any]] | None = None,
    storm: StormRun | None = None,
) -> dict[str, Any]:
    """The report of ``result``, the run of ``plan`` (for a sweep: the last level run).

    ``started_at`` is when the whole run began (calibration and earlier sweep levels
    included); by default the measured level's own start. A storm run (``storm``) adds its
    :func:`storm_entries`; other reports do not have those keys.
    """
    stats = result.stats
    latency = stats.latency()
    summary, run_verdict = _level_verdict(result, plan.slo_p99_ms, latency)
    service = summarize(stats.service)
    breaking = None
    if sweep:
        breaking = next((row["concurrency"] for row in sweep if row["verdict"] != "OK"), None)
    report: dict[str, Any] = {
        "schemaVersion": SCHEMA_VERSION,
        "generation": plan.generation,
        "startedAt": rfc3339(started_at or result.started_at, timespec="milliseconds"),
        "finishedAt": rfc3339(result.finished_at, timespec="milliseconds"),
        "mode": plan.mode,
        "path": plan.path,
        "targets": list(plan.targets),
        "concurrency": plan.concurrency,
        "rate": None if plan.rate is None else _number(plan.rate),
        "processes": plan.processes,
        "balancing": plan.balancing,
        "durationSeconds": round(result.duration_s, 3),
        "scheduled": plan.scheduled,
        "requests": stats.requests,
        "successes": stats.successes,
        "errors": {"total": stats.error_count, "byKind": dict(sorted(stats.errors.items()))},
        "rps": rate_per_second(stats.successes, result.duration_s),
        "latencyMillis": _latency(summary),
        "serviceMillis": {"p50": service.p50, "mean": service.mean} if service else None,
        "perNode": [
            {
                "node": row.node,
                "target": row.target,
                "requests": row.requests,
                "successes": row.successes,
                "errors": row.errors,
                "share": round(row.share, 4),
                "rps": rate_per_second(row.successes, result.duration_s),
                "latencyMillis": {
                    "p50": row.latency.p50 if row.latency else 0.0,
                    "p99": row.latency.p99 if row.latency else 0.0,
                    "max": row.latency.max if row.latency else 0.0,
                },
            }
            for row in node_rows(stats)
        ],
        "targetsDown": down_rows(stats.targets_down),
        "calibration": calibration,
        "sweep": sweep,
        "breakingConcurrency": breaking,
        "sloP99Millis": _number(plan.slo_p99_ms),
        "verdict": run_verdict,
        "histogram": encode_histogram(latency),
    }
    if storm is not None:
        report.update(storm_entries(storm))
    return report
