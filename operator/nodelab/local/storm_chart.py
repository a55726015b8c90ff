"""The storm tour's picture: each phase's run second by second, one panel per phase.

Offered requests, attempts sent and goodput (successes) per second from the run's timeline
(``lastRun.timeline``), the trigger window shaded, the seconds the circuit breaker was open
marked along the top, and the storm model's predicted goodput as a dashed line. Drawn with
matplotlib's Agg backend, saved as PNG and SVG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodelab.local.chart import save_figure
from nodelab.local.storm_tour import StormPhase

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["breaker_open_spans", "save_storm_chart", "storm_figure", "timeline_series"]

_OFFERED, _ATTEMPTS, _GOODPUT, _MODEL = "#616161", "#ef6c00", "#2e7d32", "#1b5e20"
_TRIGGER, _BREAKER = "#ffcdd2", "#6a1b9a"


def timeline_series(report: Mapping[str, Any]) -> dict[str, list[float]]:
    """Per-point x (the point's middle, seconds) and offered/attempts/successes per second."""
    timeline = report.get("timeline") or {}
    width = float(timeline.get("secondsPerPoint") or 1)
    series: dict[str, list[float]] = {"t": [], "offered": [], "attempts": [], "successes": []}
    for point in timeline.get("points") or []:
        series["t"].append(float(point["t"]) + width / 2)
        for key in ("offered", "attempts", "successes"):
            series[key].append(float(point.get(key) or 0))
    return series


def breaker_open_spans(report: Mapping[str, Any]) -> list[tuple[float, float]]:
    """[start, end) seconds of the points whose breaker was open, neighbours merged."""
    timeline = report.get("timeline") or {}
    width = float(timeline.get("secondsPerPoint") or 1)
    spans: list[tuple[float, float]] = []
    for point in timeline.get("points") or []:
        if point.get("breaker") != "open":
            continue
        start = float(point["t"])
        if spans and spans[-1][1] >= start:
            spans[-1] = (spans[-1][0], start + width)
        else:
            spans.append((start, start + width))
    return spans


def storm_figure(phases: Sequence[StormPhase], *, title: str) -> Figure:
    """The figure: one panel per phase, side by side, sharing the y axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = max(len(phases), 1)
    fig, axes = plt.subplots(1, count, figsize=(6 * count, 5.2), sharey=True, squeeze=False)
    for ax, phase in zip(axes[0], phases, strict=False):
        _panel(ax, phase)
    axes[0][0].set_ylabel("requests per second")
    legend: dict[str, Any] = {}  # label -> handle, first panel first (the breaker may be later)
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    handles, labels = list(legend.values()), list(legend)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(handles), fontsize=9)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    return fig


def _panel(ax: Any, phase: StormPhase) -> None:
    series = timeline_series(phase.report)
    window = phase.trigger_window
    if window is not None:
        ax.axvspan(window[0], window[1], color=_TRIGGER, alpha=0.6, label="trigger (the fault)")
    # Each point counts one second (or secondsPerPoint): drawn as steps, not as a slope.
    for key, colour, width, label in (
        ("offered", _OFFERED, 1.5, "offered"),
        ("attempts", _ATTEMPTS, 2.0, "attempts sent"),
        ("successes", _GOODPUT, 2.5, "goodput"),
    ):
        ax.plot(
            series["t"], series[key], color=colour, linewidth=width, label=label,
            drawstyle="steps-mid",
        )  # fmt: skip
    predicted = phase.prediction.timeline_points()
    ax.plot(
        [float(p["t"]) + 0.5 for p in predicted],
        [float(p["successes"]) for p in predicted],
        color=_MODEL,
        linestyle="--",
        drawstyle="steps-mid",
        linewidth=1.5,
        label="goodput, storm model",
    )
    for index, (start, end) in enumerate(breaker_open_spans(phase.report)):
        ax.axvspan(
            start, end, ymin=0.95, ymax=1.0, color=_BREAKER,
            label="breaker open" if index == 0 else None,
        )  # fmt: skip
    ax.set_title(f"{phase.label}\n{phase.verdict} (model: {phase.predicted_verdict})", fontsize=10)
    ax.set_xlabel("seconds into the run")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)


def save_storm_chart(phases: Sequence[StormPhase], out_dir: Path, *, title: str) -> list[Path]:
    """Draw the storm chart into ``out_dir`` as ``storm.png`` and ``storm.svg``; the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return save_figure(storm_figure(phases, title=title), out_dir, "storm")
