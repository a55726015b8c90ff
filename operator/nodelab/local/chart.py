"""The tour's picture: latency distribution per phase and throughput per phase, with the SLO.

Drawn with matplotlib's Agg backend (no display needed), saved as PNG and SVG.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodelab.local.phase_run import PhaseResult
from nodelab.local.tables import phase_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PERCENTILES", "latency_curve", "save_chart", "save_figure"]

PERCENTILES = (0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 98.0, 99.0, 100.0)
_VERDICT_COLOURS = {"OK": "#2e7d32", "Crashed": "#c62828"}
_TICKS = (0.0, 50.0, 90.0, 99.0, 100.0)
# A few dozen requests per phase: past p99 there is only the maximum, drawn half a step on.
_MAX_POSITION = 2.5


def _nines(percentile: float) -> float:
    """x position of a percentile: 0 at p0, 1 at p90, 2 at p99, the maximum at 2.5."""
    if percentile >= 100.0:
        return _MAX_POSITION
    return -math.log10(1.0 - percentile / 100.0)


def latency_curve(report: dict[str, Any]) -> list[tuple[float, float]]:
    """(percentile, latency ms) points of a run, from its HdrHistogram when it carries one."""
    encoded = report.get("histogram")
    if encoded:
        try:
            from hdrh.histogram import HdrHistogram

            histogram = HdrHistogram.decode(encoded)
            if histogram.get_total_count() > 0:
                return [
                    (p, histogram.get_value_at_percentile(p) / 1000.0)
                    for p in PERCENTILES
                    if p < 100.0
                ] + [(100.0, histogram.get_max_value() / 1000.0)]
        except Exception:
            pass
    latency = report.get("latencyMillis") or {}
    points = [
        (0.0, "min"), (50.0, "p50"), (90.0, "p90"), (95.0, "p95"), (99.0, "p99"), (100.0, "max")
    ]  # fmt: skip
    return [(p, float(latency[key])) for p, key in points if latency.get(key) is not None]


def save_chart(results: Sequence[PhaseResult], out_dir: Path, *, title: str) -> list[Path]:
    """Draw the tour chart into ``out_dir`` as ``tour.png`` and ``tour.svg``; return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    out_dir.mkdir(parents=True, exist_ok=True)
    slo_ms = statistics.median(r.slo_ms for r in results) if results else 0.0
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [3, 2]})
    colours = plt.get_cmap("tab10")
    labels = [phase_label(r) for r in results]

    for index, result in enumerate(results):
        curve = latency_curve(result.report)
        if not curve:
            continue
        node = result.node
        left.plot(
            [_nines(p) for p, _ in curve],
            [ms for _, ms in curve],
            marker="o",
            markersize=3,
            linewidth=2,
            color=colours(index),
            label=f"{labels[index]}  ({node.replicas}x{node.workers} workers, "
            f"{result.concurrency} clients)",
        )
    left.axhline(slo_ms, color="#c62828", linestyle="--", linewidth=1.5)
    left.annotate(
        f"SLO: p99 <= {slo_ms:,.0f} ms",
        xy=(_MAX_POSITION, slo_ms),
        xytext=(-4, 4),
        ha="right",
        textcoords="offset points",
        color="#c62828",
    )
    left.set_xticks([_nines(p) for p in _TICKS], [f"p{p:g}" if p < 100 else "max" for p in _TICKS])
    left.set_yscale("log")
    left.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    left.set_xlabel("percentile of requests (tail to the right)")
    left.set_ylabel("latency, ms (log scale)")
    left.set_title("Latency distribution per phase")
    left.grid(True, which="both", alpha=0.3)
    left.legend(loc="upper left", fontsize=8)

    positions = list(range(len(results)))
    measured = [float(r.report.get("rps") or 0) for r in results]
    predicted = [r.prediction.throughput_rps for r in results]
    verdicts = [str(r.report.get("verdict")) for r in results]
    bars = right.bar(
        positions,
        measured,
        width=0.6,
        color=[_VERDICT_COLOURS.get(v, "#f9a825") for v in verdicts],
        label="measured (colour = verdict)",
    )
    right.scatter(
        positions, predicted, marker="_", s=900, color="black", zorder=3,
        label="capacity model",
    )  # fmt: skip
    for bar, result, verdict in zip(bars, results, verdicts, strict=True):
        p99 = (result.report.get("latencyMillis") or {}).get("p99")
        right.annotate(
            f"{verdict}\np99 {float(p99 or 0):,.0f} ms",
            xy=(bar.get_x() + bar.get_width() / 2, bar.get_height()),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    right.set_xticks(positions, labels, rotation=15, ha="right", fontsize=8)
    right.set_ylabel("throughput, successful requests / s")
    right.set_title("Throughput per phase: measured vs model")
    right.set_ylim(0, max([*measured, *predicted, 1.0]) * 1.3)
    right.grid(True, axis="y", alpha=0.3)
    right.legend(loc="upper left", fontsize=8)

    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return save_figure(fig, out_dir, "tour")


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Save ``fig`` into ``out_dir`` as ``<stem>.png`` and ``<stem>.svg``, close it; the paths."""
    import matplotlib.pyplot as plt

    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    for path in paths:
        fig.savefig(path, dpi=130)
    plt.close(fig)
    return paths
