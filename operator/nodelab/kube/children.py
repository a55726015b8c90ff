"""Reading the lab's children as their controllers write them: the node Deployments' rollout
(the fast one, and phase 6's slow pool), why their pods are not ready, and where a load Job is.
Value in, value out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nodelab.model import names, quantity

__all__ = [
    "Diagnosis",
    "JobState",
    "diagnose_deployment",
    "diagnose_pods",
    "fleet_progress",
    "job_state",
    "load_pod_running",
    "rollout_progress",
]


@dataclass(frozen=True)
class Diagnosis:
    """Why something is not going as planned: a CamelCase reason and a message for humans."""

    reason: str
    message: str


def rollout_progress(deployment: Mapping[str, Any] | None, generation: int) -> tuple[bool, str]:
    """(ready, how far): is the Deployment rolled out for ``generation`` with every pod ready?"""
    if not deployment:
        return False, "the node Deployment does not exist yet"
    labels = (deployment.get("metadata") or {}).get("labels") or {}
    built_for = names.generation_of(labels)
    if built_for is not None and built_for < generation:
        return False, f"the node Deployment is still at generation {built_for}"
    want = int((deployment.get("spec") or {}).get("replicas", 1))
    status = deployment.get("status") or {}
    meta_generation = (deployment.get("metadata") or {}).get("generation")
    if meta_generation is not None and int(status.get("observedGeneration") or 0) < int(
        meta_generation
    ):
        return False, "the Deployment controller has not seen the new pod template yet"
    updated = int(status.get("updatedReplicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    done = updated >= want and ready >= want and available >= want and total <= want
    return done, f"{min(ready, want)}/{want} node pods ready"


def fleet_progress(
    deployment: Mapping[str, Any] | None,
    slow_deployment: Mapping[str, Any] | None,
    generation: int,
    *,
    slow_pool: bool,
) -> tuple[bool, str]:
    """(ready, how far) of the whole fleet: the node Deployment and, with a slow pool (phase
    6), the slow one too; without one, a slow Deployment still there (being deleted) is not
    ready either, so the run never measures a pool the spec no longer has."""
    ready, how_far = rollout_progress(deployment, generation)
    if slow_pool:
        if not slow_deployment:
            return False, f"{how_far}; the slow pool's Deployment does not exist yet"
        slow_ready, slow_far = rollout_progress(slow_deployment, generation)
        return ready and slow_ready, f"{how_far}; slow pool: {slow_far}"
    if slow_deployment:
        return False, f"{how_far}; the slow pool's Deployment is being deleted"
    return ready, how_far


_IMAGE_REASONS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
_CONFIG_REASONS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


def diagnose_pods(pods: Sequence[Mapping[str, Any]]) -> Diagnosis | None:
    """The most telling reason the pods are not ready, or None if they are merely starting.

    Order: unschedulable (nothing else can happen), then images, then crashing containers.
    """
    found: dict[str, Diagnosis] = {}
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        unschedulable = _unschedulable(pod, name)
        if unschedulable is not None and "sched" not in found:
            found["sched"] = unschedulable
        for status in (pod.get("status") or {}).get("containerStatuses") or ():
            waiting = (status.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in _IMAGE_REASONS and "image" not in found:
                found["image"] = Diagnosis(
                    "ImagePullFailed",
                    f"pod {name}: image {status.get('image')!r} cannot be pulled ({reason}: "
                    f"{waiting.get('message', 'no details')}); on kind, load it with "
                    "`kind load docker-image`, or set spec.node.image",
                )
            elif reason == "CrashLoopBackOff" and "crash" not in found:
                terminated = (status.get("lastState") or {}).get("terminated") or {}
                found["crash"] = Diagnosis(
                    "CrashLoopBackOff",
                    f"pod {name}: container {status.get('name')!r} keeps crashing "
                    f"({status.get('restartCount', 0)} restarts, last exit code "
                    f"{terminated.get('exitCode', '?')}: {terminated.get('reason', 'unknown')}); "
                    f"see `kubectl logs {name} --previous`",
                )
            elif reason in _CONFIG_REASONS and "config" not in found:
                found["config"] = Diagnosis(
                    "ContainerError", f"pod {name}: {reason}: {waiting.get('message', '')}".strip()
                )
    for key in ("sched", "image", "crash", "config"):
        if key in found:
            return found[key]
    return None


def _unschedulable(pod: Mapping[str, Any], name: str) -> Diagnosis | None:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            requests = _pod_cpu_request(pod)
            asks = f" asks for {requests} CPU and" if requests else ""
            return Diagnosis(
                "Unschedulable",
                f"pod {name}{asks} cannot be scheduled: {condition.get('message', '').strip()}. "
                "Vertical scaling has passed what one Kubernetes node has (the hardware max): "
                "lower spec.node.workers or spec.node.cpuPerWorker, or scale horizontally "
                "with spec.node.replicas",
            )
    return None


def _pod_cpu_request(pod: Mapping[str, Any]) -> str | None:
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or ():
        cpu = ((container.get("resources") or {}).get("requests") or {}).get("cpu")
        if cpu is None:
            continue
        try:
            total += quantity.cpu_millicores(str(cpu))
        except ValueError:
            return None
    return quantity.format_cpu(total) if total else None


def diagnose_deployment(deployment: Mapping[str, Any] | None) -> Diagnosis | None:
    """What the Deployment's own conditions say is wrong (quota, admission, deadline)."""
    for condition in ((deployment or {}).get("status") or {}).get("conditions") or ():
        kind, status = condition.get("type"), condition.get("status")
        if kind == "ReplicaFailure" and status == "True":
            return Diagnosis(
                "ReplicaFailure", f"pods cannot be created: {condition.get('message', '')}"
            )
        if kind == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return Diagnosis("ProgressDeadlineExceeded", str(condition.get("message", "")))
    return None


@dataclass(frozen=True)
class JobState:
    """Where a load Job is: Running, Succeeded or Failed (with why)."""

    state: str
    reason: str = ""
    message: str = ""
    finished_at: str | None = None


def load_pod_running(job: Mapping[str, Any]) -> bool:
    """Whether a load Job's pod runs: ``status.ready`` counts running pods, while ``active``
    also counts pods still being scheduled or pulling their image."""
    return int((job.get("status") or {}).get("ready") or 0) > 0


def job_state(job: Mapping[str, Any]) -> JobState:
    """Read a Job's status the way the Job controller writes it."""
    name = (job.get("metadata") or {}).get("name", "?")
    status = job.get("status") or {}
    for condition in status.get("conditions") or ():
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobState("Succeeded", "Complete", "", status.get("completionTime"))
        if condition.get("type") == "Failed":
            return _failed(
                job,
                name,
                str(condition.get("reason") or "JobFailed"),
                str(condition.get("message") or ""),
                condition.get("lastTransitionTime"),
            )
    if int(status.get("succeeded") or 0) >= 1:
        return JobState("Succeeded", "Complete", "", status.get("completionTime"))
    backoff = int((job.get("spec") or {}).get("backoffLimit", 6))
    if int(status.get("failed") or 0) > backoff:
        return _failed(job, name, "BackoffLimitExceeded", "", None)
    return JobState("Running")


def _failed(job: Mapping[str, Any], name: str, reason: str, detail: str, at: Any) -> JobState:
    if reason == "DeadlineExceeded":
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        message = (
            f"load Job {name} ran past its deadline of {deadline}s and was stopped: lower "
            "spec.load.requests or durationSeconds, or raise the operator's NODELAB_LOAD_DEADLINE"
        )
    else:
        message = (
            f"load Job {name} failed ({reason}{': ' + detail if detail else ''}); "
            f"see `kubectl logs job/{name}`"
        )
    return JobState("Failed", reason, message, str(at) if at else None)
