"""The balancing tour's picture: each node's share of the requests and the p99, per strategy.

Left: one group of bars per strategy, one bar per node (the slow ones hatched), the balancing
model's share as a black mark on each. Right: p99 per strategy, bars coloured by verdict, the
model's p99 as a black mark and the SLO as a red dashed line. Drawn with matplotlib's Agg
backend, saved as PNG and SVG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nodelab.local.balancing_tour import BalancingRun, node_label, slow_replicas
from nodelab.local.chart import save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["balancing_figure", "save_balancing_chart"]

_VERDICT_COLOURS = {"OK": "#2e7d32", "Crashed": "#c62828"}


def balancing_figure(runs: Sequence[BalancingRun], *, title: str) -> Figure:
    """The figure: shares per node and strategy (left), p99 per strategy (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [3, 2]})
    colours = plt.get_cmap("tab10")
    names = [run.strategy for run in runs]
    positions = list(range(len(runs)))
    replicas = runs[0].lab.spec.node.replicas if runs else 0
    slow = set(slow_replicas(runs[0].lab)) if runs else set()
    width = 0.8 / max(replicas, 1)
    for index in range(replicas):
        offset = (index - (replicas - 1) / 2) * width
        xs = [x + offset for x in positions]
        measured = [
            float(run.nodes[index].get("share") or 0) if index < len(run.nodes) else 0.0
            for run in runs
        ]
        model = [
            run.prediction.shares[index] if index < len(run.prediction.shares) else 0.0
            for run in runs
        ]
        left.bar(
            xs, measured, width=width * 0.9, color=colours(index),
            hatch="//" if index in slow else None, edgecolor="white",
            label=node_label(runs[0].lab, index),
        )  # fmt: skip
        left.scatter(
            xs, model, marker="_", s=250, color="black", zorder=3,
            label="balancing model" if index == 0 else None,
        )  # fmt: skip
    if replicas:
        left.axhline(1 / replicas, color="#9e9e9e", linestyle=":", linewidth=1)
    left.set_xticks(positions, names)
    left.set_ylabel("share of the requests")
    left.set_ylim(0, 1)
    left.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.0%}"))
    left.set_title("Share of requests per node")
    left.grid(True, axis="y", alpha=0.3)
    left.legend(loc="upper right", fontsize=8)

    p99 = [run.p99_ms for run in runs]
    predicted = [run.prediction.p99_ms for run in runs]
    bars = right.bar(
        positions, p99, width=0.6,
        color=[_VERDICT_COLOURS.get(run.verdict, "#f9a825") for run in runs],
        label="measured (colour = verdict)",
    )  # fmt: skip
    right.scatter(
        positions, predicted, marker="_", s=900, color="black", zorder=3, label="balancing model"
    )
    for bar, run in zip(bars, runs, strict=True):
        right.annotate(
            f"{run.verdict}\n{run.p99_ms:,.0f} ms",
            xy=(bar.get_x() + bar.get_width() / 2, bar.get_height()),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    if runs:
        slo = runs[0].slo_ms
        right.axhline(slo, color="#c62828", linestyle="--", linewidth=1.5)
        right.annotate(
            f"SLO {slo:,.0f} ms", xy=(-0.45, slo), xytext=(0, 4),
            textcoords="offset points", ha="left", color="#c62828", fontsize=8,
        )  # fmt: skip
    right.set_xticks(positions, names, rotation=15, ha="right")
    right.set_ylabel("p99 latency, ms")
    right.set_ylim(0, max([*p99, *predicted, runs[0].slo_ms if runs else 0.0, 1.0]) * 1.3)
    right.set_title("p99 per strategy: measured vs model")
    right.grid(True, axis="y", alpha=0.3)
    right.legend(loc="upper right", fontsize=8)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return fig


def save_balancing_chart(runs: Sequence[BalancingRun], out_dir: Path, *, title: str) -> list[Path]:
    """Draw the chart into ``out_dir`` as ``balancing.png`` and ``balancing.svg``; the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return save_figure(balancing_figure(runs, title=title), out_dir, "balancing")
