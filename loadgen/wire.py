"""The plain form of run results on the pipe from a worker process to the parent.

Plain, picklable and JSON-able: counters as they are, histograms in their standard encoding
(:func:`loadgen.histogram.encode_histogram`), target-down rows as in the report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from loadgen.accumulators import NodeStats, RunResult, RunStats
from loadgen.health import DownTarget
from loadgen.histogram import decode_histogram, encode_histogram
from loadgen.rows import down_rows

__all__ = ["result_from_wire", "result_to_wire", "stats_from_wire", "stats_to_wire"]


def stats_to_wire(stats: RunStats) -> dict[str, Any]:
    """``stats`` as counters plus encoded histograms."""
    return {
        "errors": dict(stats.errors),
        "targetErrors": dict(stats.target_errors),
        "targetsDown": down_rows(stats.targets_down),
        "uncorrected": encode_histogram(stats.uncorrected),
        "service": encode_histogram(stats.service),
        "nodes": [
            {
                "node": node.node,
                "targets": sorted(node.targets),
                "latency": encode_histogram(node.latency),
            }
            for node in stats.nodes.values()
        ],
    }


def stats_from_wire(wire: dict[str, Any]) -> RunStats:
    """Inverse of :func:`stats_to_wire`."""
    stats = RunStats(
        uncorrected=decode_histogram(wire["uncorrected"]),
        service=decode_histogram(wire["service"]),
    )
    stats.errors.update((str(k), int(v)) for k, v in wire["errors"].items())
    stats.target_errors.update((str(k), int(v)) for k, v in wire["targetErrors"].items())
    for row in wire.get("targetsDown", ()):
        down = DownTarget(bool(row["wentAway"]), int(row["failedConnects"]))
        stats.record_target_down(str(row["target"]), down)
    for row in wire["nodes"]:
        node = NodeStats(str(row["node"]), decode_histogram(row["latency"]))
        node.targets = set(row["targets"])
        stats.nodes[node.node] = node
    return stats


def result_to_wire(result: RunResult) -> dict[str, Any]:
    """``result`` in plain form: its stats (:func:`stats_to_wire`) and POSIX timestamps."""
    return {
        "stats": stats_to_wire(result.stats),
        "startedAt": result.started_at.timestamp(),
        "finishedAt": result.finished_at.timestamp(),
        "durationSeconds": result.duration_s,
        "cutShort": result.cut_short,
    }


def result_from_wire(wire: dict[str, Any]) -> RunResult:
    """Inverse of :func:`result_to_wire`."""
    return RunResult(
        stats=stats_from_wire(wire["stats"]),
        started_at=datetime.fromtimestamp(float(wire["startedAt"]), UTC),
        finished_at=datetime.fromtimestamp(float(wire["finishedAt"]), UTC),
        duration_s=float(wire["durationSeconds"]),
        cut_short=bool(wire["cutShort"]),
    )
