"""One phase on this machine: fleet, calibration, load, model, as the operator and its Job would.

The same steps as in the cluster: the node spec becomes running processes (``fleet``), the load
spec becomes a ``LoadPlan`` run by the load generator's own ``run``, and the capacity model's
prediction is put beside the measurement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen import runner
from loadgen.plan import LoadPlan
from nodelab.local import calibrate as calibration_mod
from nodelab.local.fleet import Fleet, FleetSpec
from nodelab.local.narration import Narrator
from nodelab.local.settings import LocalSettings
from nodelab.local.workload import Workload, plan_workload, slo_factor
from nodelab.model import capacity
from nodelab.model import spec as nodelab_spec

__all__ = ["PhaseResult", "predict_for", "run_phase"]


@dataclass(frozen=True)
class PhaseResult:
    """Everything one local run measured and predicted."""

    source: str
    lab: nodelab_spec.NodeLab
    workload: Workload
    calibration: calibration_mod.Calibration
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
    def concurrency(self) -> int:
        """The concurrency the report's headline figures were measured at."""
        return int(self.report.get("concurrency") or self.lab.spec.load.concurrency)

    @property
    def predicted_breaking(self) -> int | None:
        """First sweep level whose predicted worst-case latency passes the SLO."""
        for level, prediction in self.sweep_predictions:
            if prediction.p99_ms > self.slo_ms:
                return level
        return None


def predict_for(
    calibration: calibration_mod.Calibration,
    workload: Workload,
    *,
    replicas: int,
    workers: int,
    concurrency: int,
    cores: int,
) -> capacity.Prediction:
    """The capacity model for this fleet, from the calibrated service time.

    Everything in a request that is not the configured wait is counted as CPU: the work, the
    HTTP handling and the load generator's share all need a core. The worker itself computes
    what it spends inside the worker beyond the wait; the replicas share this machine's cores.
    """
    service_ms = calibration.latency_ms
    cpu_ms = max(service_ms - workload.io_millis, 0.0)
    return capacity.predict(
        service_ms=service_ms,
        cpu_ms=cpu_ms,
        workers=workers,
        replicas=replicas,
        concurrency=concurrency,
        cores=cores,
        work_ms=max(calibration.service_ms - workload.io_millis, 0.0),
        requests=workload.requests,
        shared_cores=True,
    )


def run_phase(
    source: str | Path,
    lab: nodelab_spec.NodeLab,
    settings: LocalSettings,
    fleet: Fleet,
    narrator: Narrator,
    *,
    generation: int | None = None,
) -> PhaseResult:
    """Run one validated phase on ``fleet`` (reused when its node spec allows) and return it."""
    node, load = lab.spec.node, lab.spec.load
    workload = plan_workload(lab, quick=settings.quick, mode=settings.mode)
    for note in workload.notes:
        narrator.say(note)
    fleet.apply(
        FleetSpec(
            lab=lab.name,
            replicas=node.replicas,
            workers=node.workers,
            load_factor=workload.load_factor,
            io_millis=workload.io_millis,
        )
    )
    narrator.say(f"calibrating: {settings.calibration_requests} sequential requests to {load.path}")
    calibration = calibration_mod.calibrate(
        fleet.urls,
        path=load.path,
        requests=settings.calibration_requests,
        timeout_s=float(load.timeout_seconds),
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
    plan = LoadPlan(
        targets=tuple(fleet.urls),
        path=load.path,
        concurrency=load.concurrency,
        requests=workload.requests,
        duration_s=workload.duration_s,
        rate=load.rate,
        timeout_s=float(load.timeout_seconds),
        processes=min(load.processes, load.concurrency),
        slo_p99_ms=slo_ms,
        sweep=load.sweep or None,
        generation=generation if generation is not None else lab.generation,
        fresh_connections=True,  # as the Job's load does (nodelab.kube.builders.build_load_plan)
    )
    report = runner.run(plan, progress=narrator)
    report["calibration"] = calibration.to_report()
    fleet.check_alive()
    concurrency = int(report.get("concurrency") or load.concurrency)
    shape = {"replicas": node.replicas, "workers": node.workers, "cores": settings.cores}
    prediction = predict_for(calibration, workload, concurrency=concurrency, **shape)
    sweep_predictions = tuple(
        (level, predict_for(calibration, workload, concurrency=level, **shape))
        for level in load.sweep
    )
    return PhaseResult(
        source=str(source),
        lab=lab,
        workload=workload,
        calibration=calibration,
        slo_ms=slo_ms,
        slo_scale=scale,
        cores=settings.cores,
        report=report,
        prediction=prediction,
        sweep_predictions=sweep_predictions,
    )
