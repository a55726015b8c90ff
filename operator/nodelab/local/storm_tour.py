"""``nodelab tour --storm``: phase 5's three retry policies against one fault, side by side.

The workshop's incident: one fault (a few slow seconds on every node), and what the clients'
retries make of it. Phase 5a retries at once and keeps the fleet down after the fault is gone;
5b spreads its retries with capped exponential backoff and full jitter; 5c adds the defences
(the node sheds past a bounded queue and says when to come back, the client honours it, spends
a retry budget and opens a circuit breaker). Each run is put beside the storm model's
prediction (:mod:`nodelab.model.storm`) for the same fleet, calibrated here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from loadgen.resilience.policy import RetryPolicy
from nodelab.local.phase_run import PhaseResult
from nodelab.model import prediction, storm
from nodelab.model import spec as nodelab_spec

__all__ = [
    "StormPhase",
    "intro_lines",
    "protection_words",
    "retry_words",
    "storm_files",
    "storm_phase",
    "storm_table",
    "why_lines",
]


@dataclass(frozen=True)
class StormPhase:
    """One phase 5 run as the storm tour shows it: what ran, what it measured, the model's say.

    ``report`` is the run's ``lastRun`` (``timeline``, ``storm``, ``trigger``...).
    """

    label: str
    lab: nodelab_spec.NodeLab
    report: Mapping[str, Any]
    prediction: storm.StormPrediction

    @property
    def figures(self) -> Mapping[str, Any]:
        """``lastRun.storm``: amplification, goodput, recovery, verdict (empty when absent)."""
        value = self.report.get("storm")
        return value if isinstance(value, Mapping) else {}

    @property
    def verdict(self) -> str:
        """``Recovered``, ``DidNotRecover`` or ``NoTrigger`` as measured."""
        return str(self.figures.get("verdict") or "-")

    @property
    def predicted_verdict(self) -> str:
        """The model's verdict, in the same words."""
        if self.trigger_window is None:
            return "NoTrigger"
        return "Recovered" if self.prediction.recovered else "DidNotRecover"

    @property
    def trigger_window(self) -> tuple[float, float] | None:
        """[start, end) of the fault window in seconds from the run's start, as it ran."""
        return trigger_window(self.lab, self.report)


def storm_files(phases_dir: Path) -> list[Path]:
    """``phase-5a-*.yaml``, ``phase-5b-*.yaml``, ``phase-5c-*.yaml``... in order."""
    return sorted(phases_dir.glob("phase-5[a-z]-*.yaml"))


def trigger_window(
    lab: nodelab_spec.NodeLab, report: Mapping[str, Any]
) -> tuple[float, float] | None:
    """The fault window the run used (its report's ``trigger``), else the spec's."""
    ran = report.get("trigger")
    if isinstance(ran, Mapping) and ran.get("startSeconds") is not None:
        return float(ran["startSeconds"]), float(ran["endSeconds"])
    spec = lab.spec.trigger
    return None if spec is None else (spec.start_seconds, spec.end_seconds)


def storm_phase(result: PhaseResult) -> StormPhase:
    """A measured run and the storm model's prediction for it (``nodelab.model.prediction``'s
    storm feed: S from the run's calibration, the window and length the run used)."""
    predicted = prediction.predict_storm(
        result.calibration,
        result.lab,
        result.where,
        result.report,
        io_millis=result.workload.io_millis,
    )
    if predicted is None:
        raise ValueError(f"{result.source}: not a storm run (no trigger, retries or rate)")
    return StormPhase(
        label=Path(result.source).stem or result.lab.name,
        lab=result.lab,
        report=result.report,
        prediction=predicted,
    )


def retry_words(policy: RetryPolicy | None) -> str:
    """The client's retry policy in a few words."""
    if policy is None or policy.kind == "none" or not policy.retries:
        return "none"
    if policy.kind == "immediate":
        words = f"immediate x{policy.max_attempts}"
    else:
        words = (
            f"backoff x{policy.max_attempts} ({policy.base_millis:g}-{policy.cap_millis:g} ms, "
            "full jitter)"
        )
    extras = []
    if policy.budget_ratio is not None:
        extras.append(f"budget {policy.budget_ratio:g}")
    if policy.honor_retry_after:
        extras.append("Retry-After")
    if policy.breaker is not None:
        extras.append("breaker")
    return words + (" + " + ", ".join(extras) if extras else "")


def protection_words(lab: nodelab_spec.NodeLab) -> str:
    """What the nodes refuse, in a few words."""
    protection = lab.spec.node.protection
    if protection is None or (not protection.max_queue and protection.rate_limit is None):
        return "none"
    parts = []
    if protection.max_queue:
        parts.append(
            f"shed past {protection.max_queue} queued/worker "
            f"(Retry-After {protection.retry_after_seconds} s)"
        )
    if protection.rate_limit is not None:
        parts.append(f"rate limit {protection.rate_limit:g}/s/worker")
    return ", ".join(parts)


def intro_lines(phases: Sequence[tuple[str, nodelab_spec.NodeLab]]) -> list[str]:
    """The first screen: the incident the lab replays and the defences each phase adds."""
    lines = [
        "The workshop's incident: one fault - every node slow for a few seconds - and the "
        "clients' retries. Requests keep arriving at the same rate whatever the nodes do (an "
        "open loop); an attempt that times out is retried, and the node still serves the "
        "abandoned one. When the retries alone offer more than the fleet can serve, the queue "
        "never drains: the fleet stays down after the fault is gone (a metastable failure).",
        "Each phase runs the same fault against the same lab; only the defences change:",
    ]
    width = max((len(name) for name, _ in phases), default=0)
    for name, lab in phases:
        lines.append(
            f"  {name:<{width}}  retries: {retry_words(lab.spec.load.retry)}; "
            f"nodes: {protection_words(lab)}"
        )
    lines.append(
        "Read: amplification = attempts / offered requests (1.0: no retries sent); goodput = "
        "successes / offered; recovery = seconds from the fault's end until goodput stays >= "
        f"{storm.RECOVERY_RATIO:.0%} of the offered load for {storm.RECOVERY_SECONDS} s."
    )
    return lines


def _num(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.0%}"


def _recovery(value: Any, recovered: bool) -> str:
    if not recovered or value is None:
        return "did not recover"
    return f"{int(value)} s"


def _pair(measured: str, model: str) -> str:
    return f"{measured} [dim]/ {model}[/]"


def _verdict_style(verdict: str) -> str:
    return {"Recovered": "green", "DidNotRecover": "red"}.get(verdict, "yellow")


def storm_table(phases: Sequence[StormPhase], title: str) -> Table:
    """The phases side by side: policy, protection, and each figure measured / model."""
    table = Table(title=title, title_justify="left")
    table.add_column("phase", no_wrap=True)
    table.add_column("retry policy", min_width=16)
    table.add_column("protection", min_width=14)
    table.add_column("offered\nrps", justify="right", no_wrap=True)
    table.add_column("capacity rps\n(in trigger)", justify="right", no_wrap=True)
    for column in ("amplif.\noverall", "amplif.\nin trigger", "goodput\nduring", "goodput\nafter"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("recovery", min_width=15)
    for phase in phases:
        figures, p = phase.figures, phase.prediction
        rate = phase.report.get("rate") or phase.lab.spec.load.rate
        verdict = phase.verdict
        recovery = _recovery(figures.get("recoverySeconds"), bool(figures.get("recovered")))
        table.add_row(
            phase.label,
            retry_words(phase.lab.spec.load.retry),
            protection_words(phase.lab),
            _pair(_num(rate, 1), _num(p.offered_rps, 1)),
            f"{p.capacity_rps:.1f} ({p.capacity_during_rps:.1f})",
            _pair(_num(figures.get("amplification")), _num(p.amplification)),
            _pair(_num(figures.get("triggerAmplification")), _num(p.trigger_amplification)),
            _pair(_pct(figures.get("goodputDuringTrigger")), _pct(p.goodput_during)),
            _pair(_pct(figures.get("goodputAfterTrigger")), _pct(p.goodput_after)),
            f"[{_verdict_style(verdict)}]{recovery}[/] [dim]/ "
            f"{_recovery(p.recovery_s, p.recovered)}[/]",
        )
    table.caption = (
        "each figure: measured / storm model; capacity = the model's requests per second the "
        "fleet serves (inside the trigger window); amplification = attempts / offered (overall, "
        "in the trigger window); goodput = successes / offered; recovery = seconds after the "
        f"trigger until {storm.RECOVERY_SECONDS} s in a row of goodput >= "
        f"{storm.RECOVERY_RATIO:.0%}"
    )
    return table


def why(prediction: storm.StormPrediction) -> str:
    """The model's reasons in one line: what the retries and defences do, and the outcome."""
    reasons = list(prediction.reasons)
    if len(reasons) <= 2:
        return "; ".join(reasons)
    # reasons: offered vs capacity, the trigger's effect, what retries/defences do, then the
    # backlog it leaves, the drain time and the outcome (see nodelab.model.storm).
    tail = next(
        (i for i, r in enumerate(reasons) if r.startswith("backlog at the trigger")), len(reasons)
    )
    mechanism = reasons[2:tail] or reasons[1:2]
    return "; ".join([*mechanism, reasons[-1]])


def why_lines(phases: Sequence[StormPhase]) -> list[str]:
    """One line per phase: its verdict measured and predicted, and the model's why."""
    lines = []
    for phase in phases:
        verdict, predicted = phase.verdict, phase.predicted_verdict
        agree = "as predicted" if verdict == predicted else f"the model said {predicted}"
        lines.append(f"{phase.label}: {verdict} ({agree}) - {why(phase.prediction)}.")
    return lines


def results_extra(phases: Sequence[StormPhase]) -> dict[str, Any]:
    """The storm model's answers for the tour's JSON: status form and predicted timeline."""
    return {
        "stormPredictions": [
            {
                "phase": phase.label,
                **phase.prediction.to_status(),
                "timeline": phase.prediction.timeline_points(),
            }
            for phase in phases
        ]
    }
