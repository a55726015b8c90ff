"""A whole load run, as other components use it: ``run(plan) -> report``.

Resolves targets, calibrates, runs one level or a sweep of concurrency levels (in this
process or spread over worker processes) and builds the report. Blocking: it runs its own
event loop, so call it from a thread when already inside one.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from loadgen import processes, report, session, storm, targets
from loadgen.accumulators import RunResult
from loadgen.plan import LoadPlan

__all__ = ["ProgressSink", "calibrate", "effective_plan", "run", "run_one_level", "run_storm"]

_log = logging.getLogger(__name__)


class ProgressSink(Protocol):
    """Where a run shows its progress (the CLI's rich bar); updated from a timer."""

    def begin(self, label: str, total: int | None, duration_s: float | None) -> None:
        """A level starts: ``total`` requests, or a run of ``duration_s`` seconds."""

    def update(self, done: int, elapsed_s: float) -> None:
        """``done`` requests answered or failed so far, ``elapsed_s`` into the level."""

    def end(self) -> None:
        """The level is over."""


def effective_plan(plan: LoadPlan) -> LoadPlan:
    """``plan`` with its targets resolved to one per address when ``expand_dns`` is set."""
    if not plan.expand_dns:
        return plan
    return replace(plan, targets=targets.expand_targets(plan.targets))


def run_one_level(plan: LoadPlan, progress: ProgressSink | None = None) -> RunResult:
    """One level of ``plan`` (``plan.sweep`` ignored), in ``plan.processes`` processes."""
    if progress is not None:
        progress.begin(f"c={plan.concurrency}", plan.scheduled, plan.duration_s)
    on_progress = progress.update if progress is not None else None
    try:
        if plan.processes > 1:
            return processes.run_in_processes(plan, on_progress)
        return session.run_sync(lambda: session.run_level(plan, on_progress=on_progress))
    finally:
        if progress is not None:
            progress.end()


def calibrate(plan: LoadPlan) -> dict[str, Any] | None:
    """The report's ``calibration``: ``plan.calibrate`` requests one after another, alone on
    the targets (as given: :func:`run` resolves them first); None when the plan asks for none."""
    if not plan.calibrate:
        return None
    calibration_plan = replace(
        plan,
        concurrency=1,
        processes=1,
        requests=plan.calibrate,
        duration_s=None,
        rate=None,
        sweep=None,
        deadline_s=None,
        retry=None,
        trigger=None,
    )
    return report.calibration_entry(run_one_level(calibration_plan))


def run_storm(plan: LoadPlan, progress: ProgressSink | None = None) -> storm.StormRun:
    """A storm run of ``plan`` (:mod:`loadgen.storm`), in this process.

    Always one process: the run's one retrier, its budget and breaker, must see every outcome,
    as one client's do; sharded, each process would open its own breaker on a third of the
    evidence. One process starts hundreds of arrivals a second, above a lab fleet's capacity.
    """
    if plan.processes > 1:
        _log.warning(
            "a storm run uses one load process (asked for %d): its retry budget and circuit "
            "breaker see every request, as one client's do",
            plan.processes,
        )
    if progress is not None:
        progress.begin(f"storm r={plan.rate:g}", plan.scheduled, plan.duration_s)
    try:
        return storm.run_storm_sync(
            replace(plan, processes=1), progress.update if progress is not None else None
        )
    finally:
        if progress is not None:
            progress.end()


def run(plan: LoadPlan, *, progress: ProgressSink | None = None) -> dict[str, Any]:
    """Run ``plan`` and return its report (the JSON of docs/contracts.md, as a dict).

    With ``plan.sweep``, each level runs in order and the sweep stops after the first level
    whose verdict is not OK; the report's top-level figures are that last level's.
    """
    started_at = datetime.now(UTC)
    plan = effective_plan(plan)
    calibration = calibrate(plan)
    if plan.storm:
        outcome = run_storm(plan, progress)
        return report.build_report(
            replace(plan, processes=1),
            outcome.result,
            started_at=started_at,
            calibration=calibration,
            storm=outcome,
        )
    if plan.sweep is None:
        result = run_one_level(plan, progress)
        return report.build_report(plan, result, started_at=started_at, calibration=calibration)
    rows: list[dict[str, Any]] = []
    level_plan = plan
    for level in plan.sweep:
        level_plan = plan.with_concurrency(level)
        result = run_one_level(level_plan, progress)
        rows.append(report.sweep_entry(level, result, plan.slo_p99_ms))
        if rows[-1]["verdict"] != "OK":
            break
    return report.build_report(
        level_plan, result, started_at=started_at, calibration=calibration, sweep=rows
    )
