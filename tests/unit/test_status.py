"""Conditions, phases, history, diagnoses, prediction and the reconcile decision."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from nodelab.kube import children, reconcile
from nodelab.kube.settings import OperatorSettings
from nodelab.model import conditions as lab_conditions
from nodelab.model import history, prediction, spec

from tests.support.phase56_labs import balancing_lab

PHASES = Path(__file__).parents[2] / "manifests" / "phases"
NOW = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(minutes=5)
SETTINGS = OperatorSettings()


def _lab(phase: str = "phase-2-vertical", generation: int = 2) -> spec.NodeLab:
    lab = spec.load_phase_file(PHASES / f"{phase}.yaml")
    return spec.NodeLab(lab.name, lab.namespace, generation, lab.spec)


def _report(generation: int = 2, **overrides: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "schemaVersion": 1,
        "generation": generation,
        "finishedAt": "2025-01-02T03:04:00Z",
        "concurrency": 5,
        "requests": 20,
        "successes": 20,
        "rps": 1.85,
        "verdict": "OK",
        "errors": {"total": 0, "byKind": {}},
        "sloP99Millis": 5000,
        "latencyMillis": {"p50": 2700.5, "p99": 2900.25},
        "calibration": {"requests": 3, "serviceMillis": 2690.0, "latencyMillis": 2700.0},
        "breakingConcurrency": None,
    }
    report.update(overrides)
    return report


def _deployment(generation: int = 2, replicas: int = 1, ready: int = 1) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "scaling-lab-node",
            "labels": {"lab.nodelab.dev/generation": str(generation)},
        },
        "spec": {"replicas": replicas},
        "status": {
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
        },
    }


def _job(generation: int, state: str = "Running", **status_: Any) -> dict[str, Any]:
    job_status: dict[str, Any] = dict(status_)
    if state == "Succeeded":
        job_status.setdefault("conditions", [{"type": "Complete", "status": "True"}])
        job_status.setdefault("completionTime", "2025-01-02T03:04:01Z")
    elif state == "Failed":
        job_status.setdefault(
            "conditions",
            [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "DeadlineExceeded",
                    "message": "Job was active longer than specified deadline",
                }
            ],
        )
    return {
        "metadata": {
            "name": f"scaling-lab-load-g{generation}",
            "labels": {"lab.nodelab.dev/generation": str(generation)},
        },
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 1800},
        "status": job_status,
    }


# --- conditions ---------------------------------------------------------------------------


def test_condition_transition_time_moves_only_on_status_change() -> None:
    first = lab_conditions.set_condition(
        None, "Available", "False", "RollingOut", "0/1", generation=1, now="t1"
    )
    same = lab_conditions.set_condition(
        first, "Available", "False", "Unschedulable", "no room", generation=2, now="t2"
    )
    flipped = lab_conditions.set_condition(
        same, "Available", "True", "RolledOut", "1/1", generation=2, now="t3"
    )
    assert first == [
        {
            "type": "Available",
            "status": "False",
            "reason": "RollingOut",
            "message": "0/1",
            "lastTransitionTime": "t1",
            "observedGeneration": 1,
        }
    ]
    assert same[0]["lastTransitionTime"] == "t1"
    assert (same[0]["reason"], same[0]["observedGeneration"]) == ("Unschedulable", 2)
    assert flipped[0]["lastTransitionTime"] == "t3"


def test_conditions_are_a_map_keyed_by_type() -> None:
    conditions = None
    for type_ in ("SLOMet", "Available", "SpecValid", "Available"):
        conditions = lab_conditions.set_condition(
            conditions, type_, "True", "R", "m", generation=1, now="t"
        )
    assert [c["type"] for c in conditions or []] == ["SpecValid", "Available", "SLOMet"]
    with pytest.raises(ValueError, match="True, False or Unknown"):
        lab_conditions.set_condition(None, "Available", "true", "R", "m", generation=1, now="t")


def test_slo_condition() -> None:
    assert lab_conditions.slo_condition(_report())[:2] == ("True", "WithinSLO")
    crashed = lab_conditions.slo_condition(_report(verdict="Crashed"))
    assert crashed[:2] == ("False", "LatencyAboveSLO") and "5000 ms" in crashed[2]
    errors = lab_conditions.slo_condition(_report(verdict="Errors", errors={"total": 3}))
    assert errors == ("False", "Errors", "3 of 20 requests failed")


# --- history ----------------------------------------------------------------------------------


def test_history_row_and_merge_is_idempotent() -> None:
    lab = _lab()
    row = history.history_row(lab, _report(breakingConcurrency=15))
    assert row == {
        "generation": 2,
        "finishedAt": "2025-01-02T03:04:00Z",
        "replicas": 1,
        "workers": 10,
        "concurrency": 5,
        "p50Millis": 2700.5,
        "p99Millis": 2900.25,
        "rps": 1.85,
        "verdict": "OK",
        "breakingConcurrency": 15,
    }
    assert "breakingConcurrency" not in history.history_row(lab, _report())
    once = history.merge_history([], row)
    assert history.merge_history(once, row) == once
    rows: list[dict[str, Any]] = []
    for generation in range(1, 15):
        rows = history.merge_history(rows, {**row, "generation": generation})
    assert [r["generation"] for r in rows] == list(range(5, 15))


# --- diagnoses -----------------------------------------------------------------------------


def test_unschedulable_pod_says_hardware_max() -> None:
    pod = {
        "metadata": {"name": "scaling-lab-node-abc"},
        "spec": {"containers": [{"resources": {"requests": {"cpu": "32"}}}]},
        "status": {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient cpu.",
                }
            ]
        },
    }
    diagnosis = children.diagnose_pods([pod])
    assert diagnosis is not None and diagnosis.reason == "Unschedulable"
    assert "0/3 nodes are available: 3 Insufficient cpu" in diagnosis.message
    assert "hardware max" in diagnosis.message and "asks for 32 CPU" in diagnosis.message


@pytest.mark.parametrize(
    ("waiting", "reason", "words"),
    [
        (
            {"reason": "ImagePullBackOff", "message": "Back-off pulling image"},
            "ImagePullFailed",
            "cannot be pulled",
        ),
        ({"reason": "ErrImagePull"}, "ImagePullFailed", "kind load docker-image"),
        (
            {"reason": "CrashLoopBackOff"},
            "CrashLoopBackOff",
            "keeps crashing (4 restarts, last exit code 1",
        ),
    ],
)
def test_container_problems(waiting: dict[str, str], reason: str, words: str) -> None:
    pod = {
        "metadata": {"name": "p1"},
        "status": {
            "containerStatuses": [
                {
                    "name": "node",
                    "image": "nodelab:dev",
                    "restartCount": 4,
                    "state": {"waiting": waiting},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
                }
            ]
        },
    }
    diagnosis = children.diagnose_pods([pod])
    assert diagnosis is not None
    assert diagnosis.reason == reason and words in diagnosis.message


def test_starting_pods_are_not_a_problem() -> None:
    pod = {
        "metadata": {"name": "p"},
        "status": {
            "containerStatuses": [
                {"name": "node", "state": {"waiting": {"reason": "ContainerCreating"}}}
            ]
        },
    }
    assert children.diagnose_pods([pod]) is None
    assert children.diagnose_deployment(_deployment()) is None


def test_deployment_conditions() -> None:
    deployment = _deployment(ready=0)
    deployment["status"]["conditions"] = [
        {
            "type": "ReplicaFailure",
            "status": "True",
            "reason": "FailedCreate",
            "message": 'pods "x" is forbidden: exceeded quota',
        }
    ]
    diagnosis = children.diagnose_deployment(deployment)
    assert diagnosis is not None and "exceeded quota" in diagnosis.message


def test_rollout_progress() -> None:
    assert children.rollout_progress(None, 1) == (False, "the node Deployment does not exist yet")
    assert children.rollout_progress(_deployment(2), 2) == (True, "1/1 node pods ready")
    assert children.rollout_progress(_deployment(2, replicas=3, ready=1), 2) == (
        False,
        "1/3 node pods ready",
    )
    assert children.rollout_progress(_deployment(1), 2)[0] is False
    stale = _deployment(2)
    stale["metadata"]["generation"] = 4
    stale["status"]["observedGeneration"] = 3
    assert children.rollout_progress(stale, 2)[0] is False


def test_job_state() -> None:
    assert children.job_state(_job(2)).state == "Running"
    assert children.job_state(_job(2, "Succeeded")).state == "Succeeded"
    assert children.job_state(_job(2, succeeded=1)).state == "Succeeded"
    failed = children.job_state(_job(2, "Failed"))
    assert (failed.state, failed.reason) == ("Failed", "DeadlineExceeded")
    assert "deadline of 1800s" in failed.message
    crashed = children.job_state(_job(3, failed=1))
    assert (crashed.state, crashed.reason) == ("Failed", "BackoffLimitExceeded")
    assert "kubectl logs job/scaling-lab-load-g3" in crashed.message


def test_prediction() -> None:
    pods = prediction.Placement.pods(_lab())
    predicted = prediction.prediction(_lab(), _report(), pods)
    assert predicted is not None
    assert predicted["generation"] == 2
    assert predicted["cores"] == 5.0  # 1 pod x 10 workers x 500m
    assert predicted["bottleneck"] == "clients"  # 5 clients, 10 workers
    # S is what a client sees alone (the calibration's latency), as on the local runtime.
    assert predicted["latencyMillis"] == pytest.approx(2700.0)
    assert predicted["sloP99Millis"] == 5000
    assert "sweep" not in predicted  # phase 2 has no sweep
    assert prediction.prediction(_lab(), _report(calibration=None), pods) is None


def test_prediction_of_a_sweep_names_where_it_breaks() -> None:
    lab = _lab("challenge-sweep")
    predicted = prediction.prediction(lab, _report(concurrency=20), prediction.Placement.pods(lab))
    assert predicted is not None
    levels = [row["concurrency"] for row in predicted["sweep"]]
    assert levels == list(lab.spec.load.sweep)
    over = [row["concurrency"] for row in predicted["sweep"] if row["p99Millis"] > 5000]
    assert over  # 30 clients wait three rounds of 2.7 s for ten workers
    assert predicted["breakingConcurrency"] == over[0]


# --- the reconcile decision ----------------------------------------------------------------


def _decide(
    current: dict[str, Any], observed: reconcile.Observation, now: datetime.datetime = NOW
) -> reconcile.Decision:
    return reconcile.decide(_lab(), current, observed, SETTINGS, now)


def test_waiting_for_rollout_says_why() -> None:
    decision = _decide({}, reconcile.Observation(_deployment(ready=0)))
    assert decision.status["phase"] == "Deploying"
    assert not decision.create_job
    available = lab_conditions.find_condition(decision.status["conditions"], "Available")
    assert available is not None
    assert (available["status"], available["reason"]) == ("False", "RollingOut")
    assert "0/1 node pods ready" in available["message"]


def test_ready_rollout_creates_the_job_once() -> None:
    decision = _decide({}, reconcile.Observation(_deployment()))
    assert decision.create_job and decision.status["phase"] == "Ready"
    pending = _decide(decision.status, reconcile.Observation(_deployment(), jobs=[_job(2)]))
    assert not pending.create_job and pending.status.get("phase", "Ready") == "Ready"
    load = lab_conditions.find_condition(pending.status.get("conditions"), "LoadComplete") or {}
    assert load.get("reason") == "LoadPending"
    scheduling = reconcile.Observation(_deployment(), jobs=[_job(2, active=1, ready=0)])
    assert _decide({**decision.status, **pending.status}, scheduling).status == {}
    observed = reconcile.Observation(_deployment(), jobs=[_job(2, active=1, ready=1)])
    running = _decide({**decision.status, **pending.status}, observed)
    assert not running.create_job and running.status["phase"] == "Loading"


def test_completed_run_adds_history_and_prediction() -> None:
    current = {"lastRun": _report(), "history": [{"generation": 1, "verdict": "Crashed"}]}
    observed = reconcile.Observation(_deployment(), jobs=[_job(2, "Succeeded")])
    decision = _decide(current, observed)
    assert decision.status["phase"] == "Completed"
    assert [row["generation"] for row in decision.status["history"]] == [1, 2]
    assert decision.status["prediction"]["generation"] == 2
    conditions = {c["type"]: c for c in decision.status["conditions"]}
    assert conditions["LoadComplete"]["status"] == "True"
    assert conditions["SLOMet"]["reason"] == "WithinSLO"
    # Level-based: the same observation again changes nothing and posts nothing.
    again = _decide({**current, **decision.status}, observed)
    assert again.status == {} and again.events == () and not again.create_job


def test_failed_job_fails_the_lab() -> None:
    decision = _decide({}, reconcile.Observation(_deployment(), jobs=[_job(2, "Failed")]))
    assert decision.status["phase"] == "Failed"
    load = lab_conditions.find_condition(decision.status["conditions"], "LoadComplete")
    assert load is not None and load["reason"] == "DeadlineExceeded"
    assert any(e.type == "Warning" and e.reason == "DeadlineExceeded" for e in decision.events)


def test_succeeded_job_without_report() -> None:
    observed = reconcile.Observation(_deployment(), jobs=[_job(2, "Succeeded")])
    assert _decide({}, observed).status["phase"] == "Loading"
    late = _decide({}, observed, now=LATER)
    assert late.status["phase"] == "Failed"
    load = lab_conditions.find_condition(late.status["conditions"], "LoadComplete")
    assert load is not None and load["reason"] == "NoReport"


def test_missing_deployment_is_reapplied() -> None:
    decision = _decide({}, reconcile.Observation(None))
    assert decision.reapply_children and decision.status["phase"] == "Deploying"


def test_old_jobs_are_cleaned() -> None:
    jobs = [_job(g, "Succeeded") for g in range(1, 6)] + [_job(6, "Failed"), _job(7)]
    deleted = reconcile.jobs_to_delete([*jobs, _job(8)], 8, "scaling-lab-load-g8", SETTINGS)
    # Superseded running g7 goes; succeeded keep the newest three; failed g6 stays.
    assert deleted == ("scaling-lab-load-g1", "scaling-lab-load-g2", "scaling-lab-load-g7")
    # The current generation's Job is never deleted, and counts against its kind's limit.
    current_done = reconcile.jobs_to_delete(
        [_job(g, "Succeeded") for g in range(1, 5)], 4, "scaling-lab-load-g4", SETTINGS
    )
    assert current_done == ("scaling-lab-load-g1",)


# --- phase 6: the slow pool's Deployment is part of the rollout ------------------------------


def _pool_lab(generation: int = 2) -> spec.NodeLab:
    lab = spec.parse_nodelab(balancing_lab())
    return spec.NodeLab(lab.name, lab.namespace, generation, lab.spec)


def _available(decision: reconcile.Decision) -> dict[str, Any]:
    found = lab_conditions.find_condition(decision.status["conditions"], "Available")
    assert found is not None
    return found


def test_fleet_progress_waits_for_both_pools() -> None:
    fast, slow = _deployment(replicas=2, ready=2), _deployment(replicas=1, ready=1)
    assert children.fleet_progress(fast, slow, 2, slow_pool=True) == (
        True,
        "2/2 node pods ready; slow pool: 1/1 node pods ready",
    )
    not_yet = children.fleet_progress(fast, _deployment(ready=0), 2, slow_pool=True)
    assert not_yet == (False, "2/2 node pods ready; slow pool: 0/1 node pods ready")
    assert children.fleet_progress(fast, None, 2, slow_pool=True)[0] is False
    assert children.fleet_progress(_deployment(ready=0), slow, 2, slow_pool=True)[0] is False
    # A slow pool removed from the spec: its Deployment must be gone before the run.
    assert children.fleet_progress(fast, None, 2, slow_pool=False) == (True, "2/2 node pods ready")
    leftover = children.fleet_progress(fast, slow, 2, slow_pool=False)
    assert leftover == (False, "2/2 node pods ready; the slow pool's Deployment is being deleted")


def test_the_job_waits_for_the_slow_pool_too() -> None:
    lab = _pool_lab()
    fast = _deployment(replicas=2, ready=2)
    waiting = reconcile.decide(
        lab, {}, reconcile.Observation(fast, slow_deployment=_deployment(ready=0)), SETTINGS, NOW
    )
    assert not waiting.create_job and waiting.status["phase"] == "Deploying"
    assert "slow pool: 0/1 node pods ready" in _available(waiting)["message"]
    assert not waiting.reapply_children
    ready = reconcile.decide(
        lab, {}, reconcile.Observation(fast, slow_deployment=_deployment()), SETTINGS, NOW
    )
    assert ready.create_job and ready.status["phase"] == "Ready"
    assert _available(ready)["reason"] == "RolledOut"
    assert _available(ready)["message"] == "3 node pod(s) of 2 worker(s) ready"


def test_a_missing_slow_deployment_is_applied_again() -> None:
    decision = reconcile.decide(
        _pool_lab(), {}, reconcile.Observation(_deployment(replicas=2, ready=2)), SETTINGS, NOW
    )
    assert decision.reapply_children and not decision.create_job
    available = _available(decision)
    assert (available["reason"], available["status"]) == ("DeploymentMissing", "False")
    assert "slow pool's Deployment" in available["message"]


def test_a_slow_deployment_the_spec_dropped_is_deleted_before_the_run() -> None:
    leftover = _deployment()
    decision = _decide({}, reconcile.Observation(_deployment(), slow_deployment=leftover))
    assert decision.reapply_children and not decision.create_job  # the apply deletes it
    assert "being deleted" in _available(decision)["message"]
    deleting = {**leftover, "metadata": {**leftover["metadata"], "deletionTimestamp": "x"}}
    decision = _decide({}, reconcile.Observation(_deployment(), slow_deployment=deleting))
    assert not decision.reapply_children and not decision.create_job  # on its way: wait
