"""Rich tables and plain-words lines for local results: one run, or the tour side by side."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from nodelab.local.phase_run import PhaseResult
from nodelab.model import capacity

__all__ = [
    "model_lines",
    "phase_label",
    "predicted_verdict",
    "report_table",
    "short_reason",
    "tour_table",
    "verdict_lines",
    "verdict_style",
]


def phase_label(result: PhaseResult) -> str:
    """A short name for a phase: the file name without ``.yaml`` (``phase-2-vertical``)."""
    return Path(result.source).stem or result.lab.name


def verdict_style(verdict: str) -> str:
    """Rich markup colour of a verdict."""
    return {"OK": "green", "Crashed": "red"}.get(verdict, "yellow")


def predicted_verdict(result: PhaseResult) -> str:
    """The verdict the capacity model's p99 gives against this run's SLO."""
    return result.prediction.verdict(result.slo_ms)


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):,.1f}"


def _ratio(measured: float, predicted: float) -> str:
    return f"{measured / predicted:.2f}x" if predicted > 0 else "-"


def report_table(result: PhaseResult) -> Table:
    """One run's load report: totals, latency percentiles and the per-node spread."""
    report = result.report
    latency = report.get("latencyMillis") or {}
    errors = report.get("errors") or {}
    verdict = str(report.get("verdict"))
    table = Table(title=f"{phase_label(result)}: load report", title_justify="left")
    for column in ("requests", "errors", "rps", "p50 ms", "p90 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    table.add_column("verdict")
    table.add_row(
        f"{report.get('successes')}/{report.get('requests')}",
        str(errors.get("total", 0)) + (f" {errors.get('byKind')}" if errors.get("total") else ""),
        f"{float(report.get('rps') or 0):.2f}",
        _ms(latency.get("p50")),
        _ms(latency.get("p90")),
        _ms(latency.get("p99")),
        _ms(latency.get("max")),
        f"[{verdict_style(verdict)}]{verdict}[/] (SLO p99 <= {result.slo_ms:g} ms)",
    )
    per_node = report.get("perNode") or []
    if len(per_node) > 1:
        for row in per_node:
            node_latency = row.get("latencyMillis") or {}
            table.add_row(
                f"  {row.get('node')}: {row.get('successes')}",
                str(row.get("errors", 0)),
                f"{float(row.get('rps') or 0):.2f}",
                _ms(node_latency.get("p50")),
                "",
                _ms(node_latency.get("p99")),
                _ms(node_latency.get("max")),
                "",
            )
    sweep = report.get("sweep") or []
    if sweep:
        levels = ", ".join(
            f"c={row['concurrency']}: p99 {_ms(row.get('p99Millis'))} ms {row.get('verdict')}"
            for row in sweep
        )
        table.caption = f"sweep: {levels}"
    return table


def model_lines(result: PhaseResult) -> list[str]:
    """Measured vs predicted, and the model's plain-words reason, as printable lines."""
    prediction = result.prediction
    report = result.report
    rps = float(report.get("rps") or 0)
    latency = report.get("latencyMillis") or {}
    mean = float(latency.get("mean") or 0)
    p99 = float(latency.get("p99") or 0)
    lines = [
        f"capacity model (S = {result.calibration.latency_ms:.1f} ms, "
        f"{result.node.replicas} x {result.node.workers} workers, "
        f"concurrency {result.concurrency}, {result.cores} cores here - shared with the load "
        "generator):",
        f"  throughput: measured {rps:.2f} rps, predicted {prediction.throughput_rps:.2f} rps "
        f"({_ratio(rps, prediction.throughput_rps)})",
        f"  latency:    measured mean {mean:.1f} ms / p99 {p99:.1f} ms, predicted mean "
        f"{prediction.latency_ms:.1f} ms / p99 {prediction.p99_ms:.1f} ms",
        f"  verdict:    measured {report.get('verdict')}, predicted {predicted_verdict(result)} "
        f"(SLO {result.slo_ms:g} ms); p99: {capacity.p99_words(prediction)}",
        f"  bottleneck: {prediction.bottleneck} - {prediction.explanation}",
    ]
    if result.sweep_predictions:
        predicted = result.predicted_breaking
        measured = report.get("breakingConcurrency")
        lines.append(
            f"  sweep: breaks at concurrency {measured if measured is not None else 'none'} "
            f"(model: {predicted if predicted is not None else 'none'})"
        )
    return lines


def short_reason(result: PhaseResult) -> str:
    """The bottleneck in a few words, for a table cell."""
    prediction, node = result.prediction, result.node
    capacity = node.replicas * node.workers
    if prediction.bottleneck == "clients":
        return f"clients: {result.concurrency} requests never fill {capacity} workers"
    if prediction.bottleneck == "workers":
        waiting = result.concurrency - capacity
        return f"workers: {waiting} of {result.concurrency} requests queue for {capacity} workers"
    where = "one machine's" if node.replicas > 1 else "the"
    if prediction.cpu_ms < 0.5 * prediction.service_ms:
        # I/O mode: the workers only wait; what needs the cores is each request's handling.
        return (
            f"cores: {prediction.cpu_ms:.1f} ms of CPU per request (HTTP, connection, load "
            f"generator) on {where} {prediction.cores:g} cores"
        )
    return f"cores: {capacity} workers share {where} {prediction.cores:g} cores"


def tour_table(results: Sequence[PhaseResult], title: str) -> Table:
    """The phases side by side: shape, measurement, prediction and the bottleneck in words."""
    table = Table(title=title, title_justify="left")
    table.add_column("phase", no_wrap=True)
    for column in ("R", "W", "C", "p50 ms", "p99 ms", "rps"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("model rps", justify="right", no_wrap=True)
    table.add_column("model p99", justify="right", no_wrap=True)
    table.add_column("model", no_wrap=True)
    table.add_column("meas/model", justify="right", no_wrap=True)
    table.add_column("bottleneck (capacity model)")
    for result in results:
        report = result.report
        latency = report.get("latencyMillis") or {}
        verdict = str(report.get("verdict"))
        rps = float(report.get("rps") or 0)
        p99 = float(latency.get("p99") or 0)
        prediction = result.prediction
        predicted = predicted_verdict(result)
        table.add_row(
            phase_label(result),
            str(result.node.replicas),
            str(result.node.workers),
            str(result.concurrency),
            _ms(latency.get("p50")),
            _ms(latency.get("p99")),
            f"{rps:.1f}",
            f"[{verdict_style(verdict)}]{verdict}[/]",
            f"{prediction.throughput_rps:.1f}",
            _ms(prediction.p99_ms),
            f"[{verdict_style(predicted)}]{predicted}[/]",
            f"{_ratio(rps, prediction.throughput_rps)} / {_ratio(p99, prediction.p99_ms)}",
            short_reason(result),
        )
    slo = sorted(r.slo_ms for r in results)
    if slo:
        table.caption = (
            f"R replicas, W workers per replica, C concurrent clients; verdict: p99 vs SLO "
            f"{slo[len(slo) // 2]:,.0f} ms; model rps = min(C/S, R*W/S, cores/cpu); model p99 = "
            "the slowest request: queue rounds, a worker's stack, the first round's CPU, at most "
            "the run; meas/model: rps / p99"
        )
    return table


def verdict_lines(results: Sequence[PhaseResult]) -> list[str]:
    """One line per phase: its verdict, and why, in the model's words and figures."""
    lines = []
    for result in results:
        report = result.report
        verdict = str(report.get("verdict"))
        p99 = float((report.get("latencyMillis") or {}).get("p99") or 0)
        prediction = result.prediction
        predicted = predicted_verdict(result)
        slo_in_s = result.slo_ms / prediction.service_ms
        compare = "<=" if p99 <= result.slo_ms else ">"
        agree = "as predicted" if predicted == verdict else f"the model said {predicted}"
        lines.append(
            f"{phase_label(result)}: {verdict} ({agree}) - p99 {p99:,.0f} ms {compare} SLO "
            f"{result.slo_ms:,.0f} ms (= {slo_in_s:.1f} service times S here). Model p99 "
            f"{prediction.p99_ms:,.0f} ms: {capacity.p99_words(prediction)}."
        )
    return lines
