"""The reconcile decision: from what the cluster shows to what the operator does next. Pure.

The reconcile step observes a lab's Deployment, pods and load Jobs, then calls :func:`decide`,
which returns the status fields to write (only those that change), whether to create the load
Job of the current generation, which Jobs to delete, and the Events to post. Level-based: the
same observation always gives the same decision, so a restarted operator picks up where it was.

What wakes the step: a change of one of the lab's children (:data:`WATCHES` says which objects
are watched, by their labels; :func:`owning_lab` says whose child an object is), the change
handler as it ends, or the safety-net timer; :func:`wants_reconcile` says whether a lab needs one.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadgen import timestamps
from nodelab.kube import children
from nodelab.kube.settings import OperatorSettings
from nodelab.model import crd, names, run_status
from nodelab.model.conditions import (
    AVAILABLE,
    DEPLOYING,
    FAILED,
    LOAD_COMPLETE,
    LOADING,
    READY,
    SLO_MET,
    SPEC_VALID,
    find_condition,
    set_condition,
)
from nodelab.model.prediction import Placement
from nodelab.model.spec import NodeLab

__all__ = [
    "WATCHES",
    "Decision",
    "Event",
    "Observation",
    "Watch",
    "decide",
    "jobs_to_delete",
    "owning_lab",
    "wants_reconcile",
]


@dataclass(frozen=True)
class Observation:
    """What the operator read for one lab in one tick."""

    deployment: Mapping[str, Any] | None
    pods: Sequence[Mapping[str, Any]] = ()
    jobs: Sequence[Mapping[str, Any]] = ()
    # Phase 6's slow pool Deployment, if one exists (wanted or still being deleted).
    slow_deployment: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the NodeLab."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    """What to do: status fields to patch, Jobs to create or delete, Events to post."""

    status: dict[str, Any] = field(default_factory=dict)
    create_job: bool = False
    delete_jobs: tuple[str, ...] = ()
    reapply_children: bool = False
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class Watch:
    """A kind of child whose changes wake the reconcile step, and the labels that select it.

    ``labels`` maps a label to the value it must have, to the values it may have (a tuple), or
    to None if it need only be present (the lab's name: one watch serves every lab).
    """

    group: str  # "" for the core API
    version: str
    plural: str
    labels: Mapping[str, str | tuple[str, ...] | None]

    @property
    def selector(self) -> str:
        """The Kubernetes label selector, e.g. ``a=b,c,d in (x,y)`` (``c`` present with any
        value, ``d`` one of x and y)."""
        return ",".join(_requirement(key, value) for key, value in sorted(self.labels.items()))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with ``labels`` is one this watch selects."""
        have = labels or {}
        return all(_satisfies(have, key, value) for key, value in self.labels.items())


def _requirement(key: str, value: str | tuple[str, ...] | None) -> str:
    if value is None:
        return key
    if isinstance(value, tuple):
        return f"{key} in ({','.join(value)})"
    return f"{key}={value}"


def _satisfies(have: Mapping[str, str], key: str, value: str | tuple[str, ...] | None) -> bool:
    if value is None:
        return key in have
    if isinstance(value, tuple):
        return have.get(key) in value
    return have.get(key) == value


# The lab's children whose changes can move it on: the node Deployments (their rollout; the slow
# pool's carries the fast one's labels), the node pods of both pools (why a rollout is stuck) and
# the load Jobs (running, finished, deleted). The label values are the builders' own
# (names.node_labels, names.load_job_labels, the pod templates' labels); node pods carry no
# managed-by label, so they are selected by their name (either pool's) and component.
WATCHES: tuple[Watch, ...] = (
    Watch(
        "apps",
        "v1",
        "deployments",
        {
            names.NAME_LABEL: names.NODE_APP,
            names.INSTANCE_LABEL: None,
            names.COMPONENT_LABEL: "node",
            names.MANAGED_BY_LABEL: "nodelab-operator",
        },
    ),
    Watch(
        "",
        "v1",
        "pods",
        {
            names.NAME_LABEL: (names.NODE_APP, names.SLOW_NODE_APP),
            names.INSTANCE_LABEL: None,
            names.COMPONENT_LABEL: "node",
        },
    ),
    Watch(
        "batch",
        "v1",
        "jobs",
        {
            names.NAME_LABEL: "nodelab-load",
            names.INSTANCE_LABEL: None,
            names.COMPONENT_LABEL: "load",
            names.MANAGED_BY_LABEL: "nodelab-operator",
        },
    ),
)


def owning_lab(child: Mapping[str, Any]) -> str | None:
    """The name of the NodeLab (same namespace) a child belongs to, or None.

    Its controller if that is a NodeLab (Deployments, Jobs), else its instance label (pods are
    the ReplicaSet's). Either only says which lab to look at: the step itself checks that the
    lab controls what it counts, so a forged label costs one look and nothing more.
    """
    meta = child.get("metadata") or {}
    for ref in meta.get("ownerReferences") or ():
        if (
            ref.get("controller")
            and ref.get("kind") == crd.KIND
            and str(ref.get("apiVersion", "")).split("/")[0] == crd.GROUP
            and ref.get("name")
        ):
            return str(ref["name"])
    name = (meta.get("labels") or {}).get(names.INSTANCE_LABEL)
    return str(name) if name else None


def wants_reconcile(meta: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether the step has anything to do for a lab: not being deleted, its generation taken
    in by the change handlers (``observedGeneration``), and its spec valid (else they said so)."""
    if meta.get("deletionTimestamp"):
        return False
    if current.get("observedGeneration") != int(meta.get("generation") or 1):
        return False
    valid = find_condition(current.get("conditions"), SPEC_VALID) or {}
    return valid.get("status") == "True"


# Reasons worth a Warning Event rather than a Normal one.
_WARNINGS = {
    "Unschedulable",
    "ImagePullFailed",
    "CrashLoopBackOff",
    "ContainerError",
    "ReplicaFailure",
    "ProgressDeadlineExceeded",
    "DeadlineExceeded",
    "BackoffLimitExceeded",
    "JobFailed",
    "NoReport",
    "DeploymentMissing",
}


def decide(
    lab: NodeLab,
    current: Mapping[str, Any],
    observed: Observation,
    settings: OperatorSettings,
    now: datetime.datetime,
) -> Decision:
    """Decide the next step for ``lab`` given its ``current`` status and what was ``observed``."""
    generation = lab.generation
    stamp = timestamps.rfc3339(now)
    conditions: list[dict[str, Any]] = [dict(c) for c in current.get("conditions") or ()]
    last_run = current.get("lastRun") or {}
    jobs = {str((j.get("metadata") or {}).get("name")): j for j in observed.jobs}
    job_name = names.load_job(lab.name, generation)
    job = jobs.get(job_name)

    def condition(type_: str, state: str, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(
            conditions, type_, state, reason, message, generation=generation, now=stamp
        )

    # Available: is the fleet of this generation up (both pools, in phase 6), and if not, why.
    slow_pool = lab.spec.node.slow_pool is not None
    ready, how_far = children.fleet_progress(
        observed.deployment, observed.slow_deployment, generation, slow_pool=slow_pool
    )
    missing = observed.deployment is None or (slow_pool and observed.slow_deployment is None)
    if ready:
        conditions = run_status.with_rolled_out(conditions, lab, now=stamp)
    elif missing:
        which = "node Deployment" if observed.deployment is None else "slow pool's Deployment"
        condition(
            AVAILABLE,
            "False",
            "DeploymentMissing",
            f"the {which} is missing; the operator creates it again",
        )
    else:
        diagnosis = (
            children.diagnose_deployment(observed.deployment)
            or children.diagnose_deployment(observed.slow_deployment)
            or children.diagnose_pods(observed.pods)
        )
        if diagnosis is not None:
            condition(AVAILABLE, "False", diagnosis.reason, diagnosis.message)
        else:
            condition(
                AVAILABLE,
                "False",
                "RollingOut",
                f"waiting for the rollout of generation {generation}: {how_far}",
            )

    create_job = False
    phase: str
    history = list(current.get("history") or ())
    prediction = current.get("prediction")
    if last_run.get("generation") == generation:
        # The Job reported this generation's run: done, whatever became of the Job since.
        # The same fields as the local runtime writes for the same report (run_status).
        finished = run_status.completed_status(
            lab,
            last_run,
            {**current, "conditions": conditions},
            now=stamp,
            where=Placement.pods(lab),
        )
        phase = finished["phase"]
        conditions = finished["conditions"]
        history = finished["history"]
        prediction = finished.get("prediction")
    elif job is None:
        if ready:
            create_job = True
            phase = READY
            condition(LOAD_COMPLETE, "Unknown", "LoadStarted", f"load Job {job_name} created")
        else:
            phase = DEPLOYING
            condition(
                LOAD_COMPLETE,
                "Unknown",
                "WaitingForRollout",
                "the load runs once every node pod is ready",
            )
        condition(SLO_MET, "Unknown", "NoRunYet", f"generation {generation} has not run yet")
    else:
        state = children.job_state(job)
        if state.state == "Failed":
            phase = FAILED
            condition(LOAD_COMPLETE, "False", state.reason, state.message)
        elif state.state == "Succeeded" and _past(state.finished_at, settings, now):
            phase = FAILED
            condition(
                LOAD_COMPLETE,
                "False",
                "NoReport",
                f"load Job {job_name} succeeded but no report for generation "
                f"{generation} reached status.lastRun; see `kubectl logs job/{job_name}`",
            )
        elif state.state == "Succeeded":
            phase = LOADING
            condition(
                LOAD_COMPLETE,
                "Unknown",
                "WaitingForReport",
                f"load Job {job_name} finished; waiting for its report",
            )
        elif not children.load_pod_running(job):
            # Nodes ready, Job created, its pod not yet started (scheduling, image pull).
            phase = READY
            condition(
                LOAD_COMPLETE,
                "Unknown",
                "LoadPending",
                f"load Job {job_name} created; its pod has not started yet",
            )
        else:
            phase = LOADING
            condition(LOAD_COMPLETE, "Unknown", "LoadRunning", f"load Job {job_name} is running")
        condition(SLO_MET, "Unknown", "NoRunYet", f"generation {generation} has not run yet")

    desired: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": generation,
        "conditions": conditions,
    }
    if history:
        desired["history"] = history
    if prediction is not None:
        desired["prediction"] = prediction
    changes = {k: v for k, v in desired.items() if current.get(k) != v}
    return Decision(
        status=changes,
        create_job=create_job,
        delete_jobs=jobs_to_delete(observed.jobs, generation, job_name, settings),
        # A node Deployment the spec wants is gone, or the slow pool's outlived its spec (its
        # deletion is part of applying the children).
        reapply_children=missing or (not slow_pool and _standing(observed.slow_deployment)),
        events=_events(current.get("conditions") or (), conditions),
    )


def _standing(deployment: Mapping[str, Any] | None) -> bool:
    """Whether a Deployment exists and is not being deleted already."""
    return bool(deployment) and not ((deployment or {}).get("metadata") or {}).get(
        "deletionTimestamp"
    )


def _past(finished_at: str | None, settings: OperatorSettings, now: datetime.datetime) -> bool:
    if not finished_at:
        return False
    try:
        moment = datetime.datetime.fromisoformat(finished_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    return (now - moment).total_seconds() > settings.report_grace_seconds


def jobs_to_delete(
    jobs: Sequence[Mapping[str, Any]], generation: int, keep: str, settings: OperatorSettings
) -> tuple[str, ...]:
    """Old load Jobs to delete: running ones of older generations (superseded), and finished
    ones past the history limits (newest kept). The current generation's Job is never deleted."""
    doomed: list[str] = []
    finished: dict[str, list[tuple[int, str]]] = {"Succeeded": [], "Failed": []}
    for job in jobs:
        meta = job.get("metadata") or {}
        name = str(meta.get("name"))
        if name == keep or meta.get("deletionTimestamp"):
            continue
        built_for = names.generation_of(meta.get("labels")) or 0
        state = children.job_state(job).state
        if state == "Running":
            if built_for < generation:
                doomed.append(name)
            continue
        finished[state].append((built_for, name))
    limits = {"Succeeded": settings.keep_succeeded_jobs, "Failed": settings.keep_failed_jobs}
    current = next((j for j in jobs if (j.get("metadata") or {}).get("name") == keep), None)
    for state, rows in finished.items():
        room = limits[state]
        if current is not None and children.job_state(current).state == state:
            room -= 1  # the current Job counts against its kind's limit
        rows.sort(reverse=True)
        doomed += [name for _, name in rows[max(room, 0) :]]
    return tuple(sorted(doomed))


def _events(
    before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]
) -> tuple[Event, ...]:
    events: list[Event] = []
    for condition in after:
        old = find_condition(before, str(condition["type"]))
        if old is not None and (old.get("status"), old.get("reason")) == (
            condition["status"],
            condition["reason"],
        ):
            continue
        if condition["status"] == "Unknown" and condition["reason"] == "NoRunYet":
            continue  # a reset, not news
        kind = "Warning" if condition["reason"] in _WARNINGS else "Normal"
        events.append(Event(kind, str(condition["reason"]), str(condition["message"])))
    return tuple(events)
