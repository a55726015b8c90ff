"""From a finished run to status: the fields both runtimes write once a lab's load report is in.

The operator's reconcile step (``nodelab.kube.reconcile.decide``, once ``status.lastRun`` is this
generation's) and the local runtime (after its load generator ran) call the same functions, so
the two write the same conditions, history and prediction for the same report; only where the
fleet runs (:class:`~nodelab.model.prediction.Placement`) is theirs to say. docs/operator.md's
status tables are the contract. Value in, value out: ``now`` is an RFC 3339 string.

A storm run (phase 5: the report has ``storm`` with a trigger) is judged by whether goodput came
back after the trigger, not by p99: SLOMet is True ``Recovered`` (with the seconds it took) or
False ``DidNotRecover`` (with the amplification and goodput that kept it down), from the load
generator's own ``storm.verdict``. A p99 of a storm run mixes the minutes-long retried requests
of the storm with the quick ones around it; whether the fleet came back is the lesson.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nodelab.model.conditions import (
    AVAILABLE,
    COMPLETED,
    LOAD_COMPLETE,
    SLO_MET,
    SPEC_VALID,
    set_condition,
    slo_condition,
)
from nodelab.model.history import history_row, merge_history
from nodelab.model.prediction import Placement, prediction
from nodelab.model.spec import NodeLab

__all__ = [
    "SPEC_ACCEPTED",
    "completed_status",
    "load_complete_condition",
    "rolled_out_message",
    "run_slo_condition",
    "storm_condition",
    "with_rolled_out",
    "with_spec_accepted",
]

# SpecValid of a lab whose spec passed the CRD's schema and rules: (status, reason, message).
SPEC_ACCEPTED = ("True", "Valid", "spec accepted")


def rolled_out_message(lab: NodeLab) -> str:
    """The Available message of a fleet whose every node of this generation is ready."""
    node = lab.spec.node
    return f"{node.replicas} node pod(s) of {node.workers} worker(s) ready"


def with_spec_accepted(
    conditions: Sequence[Mapping[str, Any]] | None, lab: NodeLab, *, now: str
) -> list[dict[str, Any]]:
    """``conditions`` with SpecValid True (``Valid``) for ``lab``'s generation."""
    return set_condition(conditions, SPEC_VALID, *SPEC_ACCEPTED, generation=lab.generation, now=now)


def with_rolled_out(
    conditions: Sequence[Mapping[str, Any]] | None, lab: NodeLab, *, now: str
) -> list[dict[str, Any]]:
    """``conditions`` with Available True (``RolledOut``) for ``lab``'s generation."""
    return set_condition(
        conditions,
        AVAILABLE,
        "True",
        "RolledOut",
        rolled_out_message(lab),
        generation=lab.generation,
        now=now,
    )


def load_complete_condition(last_run: Mapping[str, Any]) -> tuple[str, str, str]:
    """(status, reason, message) of LoadComplete once the run's report is in."""
    latency = last_run.get("latencyMillis") or {}
    return (
        "True",
        "Succeeded",
        f"{last_run.get('successes')}/{last_run.get('requests')} requests, "
        f"p50 {latency.get('p50')} ms, p99 {latency.get('p99')} ms, "
        f"{last_run.get('rps')} req/s",
    )


def _figure(value: Any, digits: int = 2) -> str:
    return "?" if not isinstance(value, int | float) else f"{value:.{digits}f}"


def storm_condition(last_run: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(status, reason, message) of SLOMet for a storm run with a trigger, else None.

    ``Recovered``: goodput was back (>= 95% of the offered load for 3 s) within the run;
    ``DidNotRecover``: it was not, the metastable storm.
    """
    figures = last_run.get("storm")
    if not isinstance(figures, Mapping) or figures.get("verdict") not in (
        "Recovered",
        "DidNotRecover",
    ):
        return None
    amplification = _figure(figures.get("amplification"))
    during = _figure(figures.get("goodputDuringTrigger"))
    after = _figure(figures.get("goodputAfterTrigger"))
    if figures["verdict"] == "Recovered":
        return (
            "True",
            "Recovered",
            f"goodput was back {figures.get('recoverySeconds')} s after the trigger ended "
            f"(amplification {amplification}x, goodput {during} during the trigger, "
            f"{after} after it)",
        )
    return (
        "False",
        "DidNotRecover",
        f"goodput did not come back after the trigger ended: amplification {amplification}x "
        f"(attempts per offered request), goodput {during} during the trigger and {after} "
        "after it; the retries kept the fleet past its capacity",
    )


def run_slo_condition(last_run: Mapping[str, Any]) -> tuple[str, str, str]:
    """SLOMet of a finished run: the storm verdict for a storm run, else p99 vs the SLO."""
    return storm_condition(last_run) or slo_condition(last_run)


def completed_status(
    lab: NodeLab,
    last_run: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    *,
    now: str,
    where: Placement,
    io_millis: int | None = None,
) -> dict[str, Any]:
    """The status fields once ``last_run`` (this generation's load report) is in.

    ``previous`` is the status before: its conditions move on (a transition time moves only
    when a status changes), its history gets this run's row (one per generation, at most
    :data:`~nodelab.model.history.HISTORY_LIMIT`), and its prediction stays when the run had
    no calibration. ``where`` and ``io_millis`` feed the capacity model
    (:func:`nodelab.model.prediction.prediction`). Returns ``phase``, ``observedGeneration``,
    ``conditions``, ``history`` and, with one, ``prediction``; ``lastRun`` is the caller's.
    """
    before = previous or {}
    generation = lab.generation
    conditions = set_condition(
        before.get("conditions"),
        LOAD_COMPLETE,
        *load_complete_condition(last_run),
        generation=generation,
        now=now,
    )
    conditions = set_condition(
        conditions, SLO_MET, *run_slo_condition(last_run), generation=generation, now=now
    )
    status: dict[str, Any] = {
        "phase": COMPLETED,
        "observedGeneration": generation,
        "conditions": conditions,
        "history": merge_history(before.get("history"), history_row(lab, last_run)),
    }
    predicted = prediction(lab, last_run, where, io_millis=io_millis) or before.get("prediction")
    if predicted is not None:
        status["prediction"] = predicted
    return status
