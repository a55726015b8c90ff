"""``nodelab tour --balancing``: phase 6's fleet, one slow node, every strategy in turn.

One fleet (phase 6a's: 3 replicas, one of them slow) runs the same closed loop once per
load-balancing strategy (``spec.load.balancing`` overridden per run, nothing else changes).
Each run's share of requests per node, p99 and throughput are put beside
:mod:`nodelab.model.balancing`'s prediction for nodes of the calibrated service time, the slow
ones stretched by the pool's ``serviceFactor`` and ``extraMillis``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from loadgen.balancing import STRATEGIES
from nodelab.local.phase_run import PhaseResult
from nodelab.model import balancing, prediction
from nodelab.model import spec as nodelab_spec

__all__ = [
    "BalancingRun",
    "balancing_file",
    "balancing_run",
    "balancing_table",
    "intro_lines",
    "slow_replicas",
    "verdict_lines",
    "with_strategy",
]


@dataclass(frozen=True)
class BalancingRun:
    """One strategy's run on the fleet: the report (``lastRun``), its SLO, the model's say."""

    strategy: str
    lab: nodelab_spec.NodeLab
    report: Mapping[str, Any]
    slo_ms: float
    prediction: balancing.BalancingPrediction

    @property
    def nodes(self) -> list[Mapping[str, Any]]:
        """The report's per-node rows in replica order (by target, as the fleet numbers them)."""
        rows = [r for r in self.report.get("perNode") or [] if isinstance(r, Mapping)]
        order = {str(t): i for i, t in enumerate(self.report.get("targets") or [])}
        return sorted(rows, key=lambda r: order.get(str(r.get("target")), len(order)))

    @property
    def p99_ms(self) -> float:
        """The run's p99 (ms)."""
        return float((self.report.get("latencyMillis") or {}).get("p99") or 0)

    @property
    def verdict(self) -> str:
        """The run's verdict against its SLO (``OK``, ``Crashed``, ``Errors``)."""
        return str(self.report.get("verdict") or "-")

    @property
    def predicted_verdict(self) -> str:
        """The verdict the model's p99 gives against the same SLO."""
        return "Crashed" if self.prediction.p99_ms > self.slo_ms else "OK"


def balancing_file(phases_dir: Path) -> Path | None:
    """Phase 6a's file (``phase-6a-*.yaml``): the fleet every strategy runs on."""
    return next(iter(sorted(phases_dir.glob("phase-6a-*.yaml"))), None)


def with_strategy(
    lab: nodelab_spec.NodeLab, strategy: nodelab_spec.Balancing
) -> nodelab_spec.NodeLab:
    """``lab`` with ``spec.load.balancing`` set to ``strategy`` and nothing else changed."""
    load = dataclasses.replace(lab.spec.load, balancing=strategy)
    return dataclasses.replace(lab, spec=dataclasses.replace(lab.spec, load=load))


def slow_replicas(lab: nodelab_spec.NodeLab) -> tuple[int, ...]:
    """Which replicas are slow: the last ``slowPool.replicas`` of them, as the fleet starts
    them and :func:`nodelab.model.prediction.node_profiles` orders them."""
    node = lab.spec.node
    pool = node.slow_pool
    if pool is None:
        return ()
    return tuple(range(node.replicas - pool.replicas, node.replicas))


def balancing_run(result: PhaseResult) -> BalancingRun:
    """A measured run and the balancing model's prediction for its strategy."""
    lab = result.lab
    profiles = prediction.node_profiles(
        result.calibration, lab, result.where, io_millis=result.workload.io_millis
    )
    return BalancingRun(
        strategy=lab.spec.load.balancing,
        lab=lab,
        report=result.report,
        slo_ms=result.slo_ms,
        prediction=balancing.predict_balancing(
            lab.spec.load.balancing, profiles, result.concurrency
        ),
    )


def node_label(lab: nodelab_spec.NodeLab, index: int) -> str:
    """``<lab>-<i>`` and whether it is fast or slow."""
    kind = "slow" if index in slow_replicas(lab) else "fast"
    return f"{lab.name}-{index} ({kind})"


def intro_lines(lab: nodelab_spec.NodeLab, strategies: Sequence[str] | None = None) -> list[str]:
    """The first screen: the fleet and what each strategy knows about it (default: all)."""
    strategies = list(STRATEGIES) if strategies is None else strategies
    node = lab.spec.node
    pool = node.slow_pool
    slow = len(slow_replicas(lab))
    how = []
    if pool is not None and pool.service_factor:
        how.append(f"{pool.service_factor:g}x the work")
    if pool is not None and pool.extra_millis:
        how.append(f"+{pool.extra_millis} ms")
    return [
        f"One fleet: {node.replicas} replicas of {node.workers} worker(s), {slow} of them slow "
        f"({', '.join(how) or 'as fast'}); {lab.spec.load.concurrency} clients in a closed loop. "
        f"The same load runs once per strategy ({', '.join(strategies)}); only "
        "spec.load.balancing changes.",
        "round-robin and random give every node the same share whatever its speed: the slow "
        "node's queue grows and its requests set the p99. least-outstanding, p2c and peak-ewma "
        "see the slow node's requests pile up (or its latency) and send it fewer.",
    ]


def _share(value: Any) -> str:
    return "-" if value is None else f"{float(value):.0%}"


def _verdict_style(verdict: str) -> str:
    return {"OK": "green", "Crashed": "red"}.get(verdict, "yellow")


def balancing_table(runs: Sequence[BalancingRun], title: str) -> Table:
    """One row per strategy: each node's share, p99, rps and verdict, measured / model."""
    table = Table(title=title, title_justify="left")
    table.add_column("strategy", no_wrap=True)
    lab = runs[0].lab if runs else None
    replicas = lab.spec.node.replicas if lab is not None else 0
    for index in range(replicas):
        assert lab is not None
        table.add_column(f"share {node_label(lab, index)}", justify="right", no_wrap=True)
    for column in ("p99 ms", "rps"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for run in runs:
        p = run.prediction
        measured = {i: row.get("share") for i, row in enumerate(run.nodes)}
        model = dict(enumerate(p.shares))
        cells = [
            f"{_share(measured.get(i))} [dim]/ {_share(model.get(i))}[/]" for i in range(replicas)
        ]
        rps = float(run.report.get("rps") or 0)
        table.add_row(
            run.strategy,
            *cells,
            f"{run.p99_ms:,.1f} [dim]/ {p.p99_ms:,.1f}[/]",
            f"{rps:.1f} [dim]/ {p.throughput_rps:.1f}[/]",
            f"[{_verdict_style(run.verdict)}]{run.verdict}[/] [dim]/ {run.predicted_verdict}[/]",
        )
    if runs:
        table.caption = (
            "each figure: measured / balancing model; share = the node's part of all requests; "
            f"verdict: p99 vs SLO {runs[0].slo_ms:,.0f} ms"
        )
    return table


def verdict_lines(runs: Sequence[BalancingRun]) -> list[str]:
    """One line per strategy: its verdict, measured and predicted, and the slow node's share."""
    lines = []
    for run in runs:
        slow = slow_replicas(run.lab)
        measured = sum(float(run.nodes[i].get("share") or 0) for i in slow if i < len(run.nodes))
        predicted = sum(run.prediction.shares[i] for i in slow if i < len(run.prediction.shares))
        agree = (
            "as predicted"
            if run.verdict == run.predicted_verdict
            else f"the model said {run.predicted_verdict}"
        )
        lines.append(
            f"{run.strategy}: {run.verdict} ({agree}) - the slow node took {measured:.0%} of "
            f"the requests (model {predicted:.0%}); p99 {run.p99_ms:,.0f} ms vs SLO "
            f"{run.slo_ms:,.0f} ms (model {run.prediction.p99_ms:,.0f} ms)."
        )
    return lines


def results_extra(runs: Sequence[BalancingRun]) -> dict[str, Any]:
    """The balancing model's answers for the tour's JSON."""
    return {
        "balancingPredictions": [
            {
                "strategy": run.strategy,
                "shares": [round(s, 4) for s in run.prediction.shares],
                "throughputRps": round(run.prediction.throughput_rps, 3),
                "p99Millis": round(run.prediction.p99_ms, 1),
                "p99Node": run.prediction.p99_node,
            }
            for run in runs
        ]
    }
