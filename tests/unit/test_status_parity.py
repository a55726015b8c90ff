"""One lab, one status: the operator and the local runtime write the same status for one report.

For every phase file, one load report is built by the load generator's own report builder from
synthetic run statistics, for each runtime's own load plan, and goes through both status writers:
the operator's reconcile decision (a rolled-out Deployment, the report in ``status.lastRun``,
the decision applied to the status before it) and the local runtime's ``statusdoc``. The two
documents are compared field by field; what may differ is listed below, with the reason.

A storm run (phase 5) has a synthetic timeline too (the trigger's seconds lost, the seconds after
it back or not), so its ``storm`` figures, the SLOMet verdict they give and the history row go
through both writers; a lab with a slow pool (phase 6) has its balancing prediction compared.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any

import pytest
from nodelab.kube import builders, reconcile
from nodelab.kube.settings import OperatorSettings
from nodelab.local import statusdoc
from nodelab.local.phase_run import PhaseResult
from nodelab.local.workload import plan_workload
from nodelab.model import conditions as lab_conditions
from nodelab.model import prediction, run_status, spec
from nodelab.model.load_plan import CALIBRATION_REQUESTS, RunLength, load_plan

from loadgen import report as loadgen_report
from loadgen.accumulators import RunResult, RunStats
from loadgen.plan import LoadPlan
from loadgen.storm import StormRun, in_flight_cap, storm_policy
from loadgen.timeline import Timeline

PHASES = sorted((Path(__file__).parents[2] / "manifests" / "phases").glob("*.yaml"))
SETTINGS = OperatorSettings()
LOCAL_CORES = 2
LOCAL_TARGETS = ("http://127.0.0.1:5001", "http://127.0.0.1:5002")
POD_TARGETS = ("http://10.0.0.7:8080", "http://10.0.0.8:8080")  # the Job's, expanded by DNS
STARTED = datetime.datetime(2025, 1, 2, 3, 0, 0, tzinfo=datetime.UTC)
LOCAL_TOKEN = "/tmp/nodelab-fleet-1-x/fault-token"  # the local fleet's scratch file

# What may differ, and why. Everything else is compared and must be equal.
# - lastRun.targets and lastRun.perNode[].target: the addresses the load went to (pod IPs in
#   the cluster, 127.0.0.1 here). The plans' fault token file: the mounted Secret's path in the
#   Job's pod, the fleet's scratch file here (neither is in the report).
LAST_RUN_DIFFERS = {"targets"}
PER_NODE_DIFFERS = {"target"}
# - conditions' lastTransitionTime: when each runtime saw the change (the operator's handler
#   set SpecValid before the rollout; the local runtime writes everything at once).
CONDITION_DIFFERS = {"lastTransitionTime"}
# - ChildrenApplied: the operator's Kubernetes children; the local runtime has none.
OPERATOR_ONLY_CONDITIONS = {"ChildrenApplied"}
# - the model's answers depend on where the fleet runs (prediction.Placement): replicas x pod
#   CPU of their own in the cluster, this machine's cores shared with the load generator here.
PLACEMENT_DIFFERS = {"cores", "throughputRps", "latencyMillis", "p99Millis", "bottleneck"}
PLACEMENT_DIFFERS |= {"explanation", "sweep", "breakingConcurrency"}
# - and so do the storm model's and the balancing model's (their cores bound the capacity).
PLACEMENT_DIFFERS |= {"storm", "balancing"}


def _lab(path: Path, generation: int) -> spec.NodeLab:
    return dataclasses.replace(spec.load_phase_file(path), generation=generation)


def _result(plan: LoadPlan, *, p99_of_slo: float, errors: int) -> RunResult:
    """A synthetic run of ``plan``: latencies as fractions of its SLO, the slowest at
    ``p99_of_slo``, spread over its targets, every answer 90% service time."""
    stats = RunStats()
    count = plan.requests or plan.scheduled or 20
    for i in range(count):
        fraction = p99_of_slo if i == count - 1 else 0.3 + 0.4 * i / count
        latency_us = int(plan.slo_p99_ms * fraction * 1000)
        target = plan.targets[i % len(plan.targets)]
        stats.record_success(target, f"node-{i % 2}", latency_us, int(latency_us * 0.9))
    if errors:
        stats.record_error(plan.targets[0], "timeout", errors)
    finished = STARTED + datetime.timedelta(seconds=10)
    return RunResult(stats, STARTED, finished, 10.0)


def _storm_run(plan: LoadPlan, result: RunResult, *, recovered: bool) -> StormRun | None:
    """A synthetic storm of ``plan`` (None when it is not a storm run): its offered load every
    second, nothing served inside the trigger, and after it goodput back (``recovered``) or
    the retries' attempts and nothing served until the end."""
    if not plan.storm:
        return None
    assert plan.rate is not None and plan.duration_s is not None
    timeline = Timeline()
    rate = int(plan.rate)
    trigger = plan.trigger
    attempts = 0
    for second in range(int(plan.duration_s)):
        inside = trigger is not None and trigger.start_s <= second < trigger.end_s
        down = inside or (trigger is not None and second >= trigger.end_s and not recovered)
        for _ in range(rate):
            timeline.offered(second + 0.1)
            for _ in range(3 if down else 1):
                timeline.attempt(second + 0.2)
                attempts += 1
            if down:
                timeline.error(second + 0.9, "timeout")
            else:
                timeline.success(second + 0.5, 100_000)
    return StormRun(
        result=result,
        timeline=timeline,
        policy=storm_policy(plan),
        trigger=trigger,
        offered=rate * int(plan.duration_s),
        attempts=attempts,
        retries=attempts - rate * int(plan.duration_s),
        attempt_errors={"timeout": attempts // 2},
        in_flight_cap=in_flight_cap(plan),
        peak_in_flight=rate,
    )


def _reports(
    job: LoadPlan, local: LoadPlan, *, p99_of_slo: float, errors: int = 0, recovered: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The load generator's reports of one run (a sweep when the plans have one, a storm for a
    storm plan) as the Job and the local runtime would have made it, each through its own plan
    (its targets)."""
    result = _result(job, p99_of_slo=p99_of_slo, errors=errors)
    storm = _storm_run(job, result, recovered=recovered)
    calibration_plan = LoadPlan(targets=job.targets, requests=5, slo_p99_ms=job.slo_p99_ms)
    calibration_run = _result(calibration_plan, p99_of_slo=0.3, errors=0)
    calibration = loadgen_report.calibration_entry(calibration_run)
    rows: list[dict[str, Any]] | None = None
    if job.sweep:
        rows = []
        for level in job.sweep:  # as runner.run: stop after the first level that is not OK
            rows.append(loadgen_report.sweep_entry(level, result, job.slo_p99_ms))
            if rows[-1]["verdict"] != "OK":
                break
    reports = []
    for plan in (job, local):
        last = plan.with_concurrency(rows[-1]["concurrency"]) if rows else plan
        reports.append(
            loadgen_report.build_report(
                last, result, calibration=calibration, sweep=rows, storm=storm
            )
        )
    return reports[0], reports[1]


def _plans(lab: spec.NodeLab) -> tuple[LoadPlan, LoadPlan]:
    """(the Job's plan with its targets expanded, as it reports them; the local run's)."""
    job = dataclasses.replace(
        builders.build_load_plan(lab, SETTINGS), targets=POD_TARGETS, expand_dns=False
    )
    token = LOCAL_TOKEN if lab.spec.trigger is not None else None
    local = load_plan(
        lab, targets=LOCAL_TARGETS, calibrate=CALIBRATION_REQUESTS, fault_token_file=token
    )
    return job, local


def _started(lab: spec.NodeLab, previous: dict[str, Any], stamp: str) -> dict[str, Any]:
    """The status the operator's change handler leaves for a new generation (apply_lab)."""
    conditions = previous.get("conditions")
    for type_, state, reason, message in (
        (lab_conditions.SPEC_VALID, *run_status.SPEC_ACCEPTED),
        (lab_conditions.AVAILABLE, "Unknown", "RolloutStarted", "rolling out"),
        (lab_conditions.LOAD_COMPLETE, "Unknown", "WaitingForRollout", "waiting"),
        (lab_conditions.SLO_MET, "Unknown", "NoRunYet", "not run yet"),
        ("ChildrenApplied", "True", "Applied", "every child applied"),
    ):
        conditions = lab_conditions.set_condition(
            conditions, type_, state, reason, message, generation=lab.generation, now=stamp
        )
    return {
        **previous,
        "phase": lab_conditions.DEPLOYING,
        "observedGeneration": lab.generation,
        "conditions": conditions,
    }


def _deployment(lab: spec.NodeLab, replicas: int) -> dict[str, Any]:
    """A node Deployment of ``replicas`` pods, rolled out for the lab's generation."""
    return {
        "metadata": {"labels": {"lab.nodelab.dev/generation": str(lab.generation)}},
        "spec": {"replicas": replicas},
        "status": {
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        },
    }


def operator_status(
    lab: spec.NodeLab, report: dict[str, Any], previous: dict[str, Any], now: datetime.datetime
) -> dict[str, Any]:
    """The operator's status once the Job's ``report`` is in ``lastRun``."""
    started = _started(lab, previous, "2025-01-02T02:59:00Z")
    current = {**started, "lastRun": report}
    # Both node Deployments rolled out (phase 6's slow pool has its own, of slowPool.replicas).
    pool = lab.spec.node.slow_pool
    slow = 0 if pool is None else pool.replicas
    observed = reconcile.Observation(
        _deployment(lab, lab.spec.node.replicas - slow),
        slow_deployment=None if pool is None else _deployment(lab, slow),
    )
    decision = reconcile.decide(lab, current, observed, SETTINGS, now)
    return {**current, **decision.status}


def local_status(
    lab: spec.NodeLab, report: dict[str, Any], previous: dict[str, Any] | None, now: str
) -> dict[str, Any]:
    """The local runtime's status for its ``report`` of ``lab`` (full, CPU mode)."""
    work = plan_workload(lab, quick=False, mode="cpu")
    calibration = prediction.Calibration.from_report(report["calibration"])
    assert calibration is not None
    where = prediction.Placement.one_machine(LOCAL_CORES)
    requests = prediction.run_requests(report)
    concurrency = int(report["concurrency"])
    result = PhaseResult(
        source=lab.name,
        lab=lab,
        workload=work,
        calibration=calibration,
        slo_ms=float(lab.spec.slo.p99_millis),
        slo_scale=1.0,
        cores=LOCAL_CORES,
        report=report,
        prediction=prediction.predict(
            calibration, lab, where, concurrency=concurrency, requests=requests
        ),
        sweep_predictions=prediction.sweep_predictions(calibration, lab, where, requests=requests),
    )
    return statusdoc.build_status(result, previous=previous, now=now)


def _without(rows: list[dict[str, Any]], keys: set[str]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in keys} for row in rows]


def assert_same_status(lab: spec.NodeLab, operator: dict[str, Any], local: dict[str, Any]) -> None:
    """Field by field; only the listed differences are allowed."""
    assert set(operator) == set(local)
    assert operator["phase"] == local["phase"] == "Completed"
    assert operator["observedGeneration"] == local["observedGeneration"] == lab.generation
    assert operator["history"] == local["history"]

    ours = {c["type"]: c for c in operator["conditions"]}
    theirs = {c["type"]: c for c in local["conditions"]}
    assert set(ours) - set(theirs) == OPERATOR_ONLY_CONDITIONS
    assert set(theirs) <= set(ours)
    for type_, condition in theirs.items():
        assert set(condition) == set(ours[type_])
        for key, value in condition.items():
            if key not in CONDITION_DIFFERS:
                assert ours[type_][key] == value, (type_, key)

    assert set(operator["lastRun"]) == set(local["lastRun"])
    for key, value in local["lastRun"].items():
        if key == "perNode":
            assert _without(operator["lastRun"][key], PER_NODE_DIFFERS) == _without(
                value, PER_NODE_DIFFERS
            )
        elif key not in LAST_RUN_DIFFERS:
            assert operator["lastRun"][key] == value, key

    op_pred, local_pred = operator["prediction"], local["prediction"]
    sweep_keys = {"sweep"} if lab.spec.load.sweep else set()
    assert sweep_keys <= set(op_pred) and sweep_keys <= set(local_pred)
    for key in set(op_pred) | set(local_pred):
        if key not in PLACEMENT_DIFFERS:
            assert op_pred[key] == local_pred[key], key
    if lab.spec.load.sweep:
        levels = [row["concurrency"] for row in local_pred["sweep"]]
        assert [row["concurrency"] for row in op_pred["sweep"]] == levels
    # Each side's answers are the one model's for its placement, from the same report.
    for status, where in (
        (operator, prediction.Placement.pods(lab)),
        (local, prediction.Placement.one_machine(LOCAL_CORES)),
    ):
        assert status["prediction"] == prediction.prediction(lab, status["lastRun"], where)


@pytest.mark.parametrize("path", PHASES, ids=[p.stem for p in PHASES])
def test_one_load_plan_for_both_runtimes(path: Path) -> None:
    lab = _lab(path, 3)
    job, local = _plans(lab)
    assert dataclasses.replace(
        local, targets=POD_TARGETS, fault_token_file=job.fault_token_file
    ) == job  # fmt: skip
    # Phases 5 and 6: the spec's retry, trigger and balancing are in both plans.
    assert (job.retry, job.balancing) == (lab.spec.load.retry, lab.spec.load.balancing)
    assert (job.trigger is None) == (lab.spec.trigger is None) == (job.fault_token_file is None)
    if lab.spec.trigger is not None:
        return  # a trigger needs an open loop of a duration: no request count
    shortened = load_plan(
        lab, targets=LOCAL_TARGETS, calibrate=5, length=RunLength(7, None), slo_p99_ms=12.5
    )
    assert (shortened.requests, shortened.duration_s, shortened.slo_p99_ms) == (7, None, 12.5)


# One report per phase file; the verdicts take turns, so every SLOMet reason is compared.
CASES = [(0.8, 0, "OK"), (1.5, 0, "Crashed"), (0.8, 5, "Errors")]


@pytest.mark.parametrize(
    "path,case", [(p, CASES[i % len(CASES)]) for i, p in enumerate(PHASES)],
    ids=[f"{p.stem}-{CASES[i % len(CASES)][2]}" for i, p in enumerate(PHASES)],
)  # fmt: skip
def test_both_runtimes_write_the_same_status(path: Path, case: tuple[float, int, str]) -> None:
    p99_of_slo, errors, verdict = case
    lab = _lab(path, 1)
    job, local = _plans(lab)
    recovered = verdict != "Crashed"  # a storm run: recovered or not, in turn as well
    op_report, local_report = _reports(
        job, local, p99_of_slo=p99_of_slo, errors=errors, recovered=recovered
    )
    # A sweep stops at its first level past the SLO; a storm's thousand requests dilute the
    # errors below 1% (its verdict that matters, the storm's, is asserted below).
    if not lab.spec.load.sweep and not job.storm:
        assert local_report["verdict"] == verdict
    now = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    operator = operator_status(lab, op_report, {}, now)
    mine = local_status(lab, local_report, None, "2025-01-02T03:04:05Z")
    assert_same_status(lab, operator, mine)
    if lab.spec.trigger is not None:  # phase 5: the storm verdict is SLOMet's
        slo_met = lab_conditions.find_condition(mine["conditions"], lab_conditions.SLO_MET)
        assert slo_met is not None
        expected = ("True", "Recovered") if recovered else ("False", "DidNotRecover")
        assert (slo_met["status"], slo_met["reason"]) == expected
        assert set(operator["prediction"]["storm"]) >= {"recovered", "amplification", "reasons"}
        row = mine["history"][-1]
        assert row["amplification"] == local_report["storm"]["amplification"]
        assert row.get("recoverySeconds") == local_report["storm"].get("recoverySeconds")
        assert ("recoverySeconds" in row) == recovered
    if lab.spec.node.slow_pool is not None:  # phase 6: the strategy in history, the model
        assert mine["history"][-1]["balancing"] == lab.spec.load.balancing
        for status in (operator, mine):
            shares = [node["share"] for node in status["prediction"]["balancing"]["nodes"]]
            assert len(shares) == lab.spec.node.replicas
            assert sum(shares) == pytest.approx(1.0, abs=1e-3)


def test_history_across_two_generations_is_the_same() -> None:
    first_path, second_path = PHASES[0], PHASES[1]
    operator: dict[str, Any] = {}
    mine: dict[str, Any] | None = None
    for generation, path in ((1, first_path), (2, second_path)):
        lab = _lab(path, generation)
        job, local = _plans(lab)
        op_report, local_report = _reports(job, local, p99_of_slo=0.5 + generation * 0.4)
        now = datetime.datetime(2025, 1, 2, 3, generation, 0, tzinfo=datetime.UTC)
        operator = operator_status(lab, op_report, operator, now)
        mine = local_status(lab, local_report, mine, f"2025-01-02T03:0{generation}:00Z")
        assert_same_status(lab, operator, mine)
    assert mine is not None
    assert [row["generation"] for row in operator["history"]] == [1, 2]
    assert [row["verdict"] for row in mine["history"]] == ["OK", "Crashed"]
    # The new generation moved every condition (the operator through Unknown): no stale time.
    assert {c["lastTransitionTime"] for c in mine["conditions"]} == {"2025-01-02T03:02:00Z"}
    assert {c["observedGeneration"] for c in operator["conditions"]} == {2}
