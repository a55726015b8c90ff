"""One phase on this machine: fleet, calibration, load, model, as the operator and its Job would.

The same steps as in the cluster: the node spec becomes running processes (``fleet``), the load
spec becomes the Job's ``LoadPlan`` run by the load generator's own ``run`` (its calibration
too), and the capacity model's prediction (``nodelab.model.prediction``, the operator's) is put
beside the measurement.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen import runner
from nodelab.local.fleet import Fleet, FleetSpec
from nodelab.local.narration import Narrator
from nodelab.local.settings import LocalSettings
from nodelab.local.workload import Workload, plan_workload, slo_factor
from nodelab.model import capacity
from nodelab.model import spec as nodelab_spec
from nodelab.model.load_plan import RunLength, load_plan
from nodelab.model.prediction import (
    Calibration,
    Placement,
    breaking_concurrency,
    predict,
    run_requests,
    sweep_predictions,
)

__all__ = ["PhaseResult", "run_phase"]


@dataclass(frozen=True)
class PhaseResult:
    """Everything one local run measured and predicted."""

    source: str
    lab: nodelab_spec.NodeLab  # with the generation this run measured
    workload: Workload
    calibration: Calibration
    slo_ms: float  # the SLO this run was judged by (scaled in quick mode)
    slo_scale: float
    cores: int
    report: dict[str, Any]
    prediction: capacity.Prediction
    sweep_predictions: tuple[tuple[int, capacity.Prediction], ...] = field(default=())

    @property
    def node(self) -> nodelab_spec.NodeSpec:
        """The phase's node spec (replicas, workers) as written in the file."""
        return self.lab.spec.node

    @property
    def where(self) -> Placement:
        """Where the fleet ran: on this machine's cores, shared with the load generator."""
        return Placement.one_machine(self.cores)

    @property
    def concurrency(self) -> int:
        """The concurrency the report's headline figures were measured at."""
        return int(self.report.get("concurrency") or self.lab.spec.load.concurrency)

    @property
    def predicted_breaking(self) -> int | None:
        """First sweep level whose predicted worst-case latency passes the SLO."""
        return breaking_concurrency(self.sweep_predictions, self.slo_ms)


def run_phase(
    source: str | Path,
    lab: nodelab_spec.NodeLab,
    settings: LocalSettings,
    fleet: Fleet,
    narrator: Narrator,
    *,
    generation: int | None = None,
) -> PhaseResult:
    """Run one validated phase on ``fleet`` (reused when its node spec allows) and return it.

    The load plan is the Job's (``nodelab.model.load_plan``) against the local processes, and
    the calibration the load generator's own (``loadgen.runner.calibrate`` of that plan), run
    first because quick mode scales the SLO by the service time it measures. A lab with a
    trigger gets the fleet's fault token file in its plan, as the Job gets the mounted Secret.
    """
    if generation is not None:
        lab = dataclasses.replace(lab, generation=generation)
    load = lab.spec.load
    workload = plan_workload(lab, quick=settings.quick, mode=settings.mode)
    for note in workload.notes:
        narrator.say(note)
    fleet.apply(FleetSpec.of(lab, load_factor=workload.load_factor, io_millis=workload.io_millis))
    plan = load_plan(
        lab,
        targets=fleet.urls,
        calibrate=settings.calibration_requests,
        length=RunLength(
            requests=workload.requests,
            duration_s=workload.duration_s,
            time_scale=workload.time_scale,
        ),
        fault_token_file=fleet.fault_token_file,
    )
    narrator.say(f"calibrating: {plan.calibrate} sequential requests to {load.path}")
    measured = runner.calibrate(plan)
    calibration = Calibration.from_report(measured)
    if measured is None or calibration is None:
        raise RuntimeError(
            f"calibration: none of {plan.calibrate} requests to {load.path} succeeded"
        )
    scale = slo_factor(
        workload, latency_ms=calibration.latency_ms, service_ms=calibration.service_ms
    )
    slo_ms = round(lab.spec.slo.p99_millis * scale, 1)
    narrator.say(
        f"service time S = {calibration.latency_ms:.1f} ms per request "
        f"({calibration.service_ms:.1f} ms inside the worker)"
    )
    if scale < 1.0:
        narrator.say(
            f"quick: SLO {lab.spec.slo.p99_millis} ms x {scale:.4f} (the service time's factor) "
            f"= {slo_ms:g} ms"
        )
    report = runner.run(
        dataclasses.replace(plan, calibrate=0, slo_p99_ms=slo_ms), progress=narrator
    )
    report["calibration"] = measured  # measured above, by the same code the Job's run uses
    fleet.check_alive()
    where = Placement.one_machine(settings.cores)
    requests = run_requests(report)
    io_millis = workload.io_millis
    concurrency = int(report.get("concurrency") or load.concurrency)
    return PhaseResult(
        source=str(source),
        lab=lab,
        workload=workload,
        calibration=calibration,
        slo_ms=slo_ms,
        slo_scale=scale,
        cores=settings.cores,
        report=report,
        prediction=predict(
            calibration, lab, where, concurrency=concurrency, requests=requests, io_millis=io_millis
        ),
        sweep_predictions=sweep_predictions(
            calibration, lab, where, requests=requests, io_millis=io_millis
        ),
    )
