"""The kopf handlers: thin glue between kopf, the builders and the status logic.

Two kinds of work, both idempotent:

* on create, spec update and operator resume (``apply_lab``): validate the spec, create or
  patch the children (ServiceAccount, Role, RoleBinding, Deployment, two Services), adopt
  them, and start a new generation's status (phase Deploying);
* every ``reconcile_interval`` seconds (``progress``): observe the Deployment, pods and Jobs,
  let :func:`nodelab.progress.decide` choose the next step, carry it out.

Handlers are synchronous on purpose: kopf runs them in its thread pool, so the blocking
``kubernetes`` client never stalls the event loop the watches (and, in tests, the emulated
API server) run on. Status is written through kopf's ``patch`` (a merge patch on the status
subresource) and only with the fields the operator owns: ``lastRun`` belongs to the load Job.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from nodelab import builders, crd, k8s, names, progress, validation
from nodelab import status as lab_status
from nodelab.settings import OperatorSettings
from nodelab.spec import NodeLab, parse_spec

__all__ = [
    "apply_lab",
    "configure",
    "disconnect",
    "login",
    "parse_lab",
    "progress_tick",
    "register",
]

_RESOURCE = (crd.GROUP, crd.VERSION, crd.PLURAL)
# True once every child exists and this lab controls it; False (ChildConflict) while an object
# it does not control has a child's name, which the operator then leaves alone.
CHILDREN_APPLIED = "ChildrenApplied"
_APPLIED = "every child exists and this NodeLab controls it"
# Conflicts and server trouble pass; a refused object (bad request, invalid) does not.
_PERMANENT_STATUSES = {400, 404, 422}


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Register every handler in ``registry``; the timer's interval comes from ``settings``."""
    kopf.on.login(registry=registry, id="login")(login)
    kopf.on.startup(registry=registry, id="configure")(configure)
    kopf.on.cleanup(registry=registry, id="disconnect")(disconnect)
    kopf.on.create(*_RESOURCE, registry=registry, id="apply-on-create")(apply_lab)
    kopf.on.update(*_RESOURCE, field="spec", registry=registry, id="apply-on-update")(apply_lab)
    kopf.on.resume(*_RESOURCE, registry=registry, id="apply-on-resume")(apply_lab)
    kopf.timer(
        *_RESOURCE,
        interval=settings.reconcile_interval,
        registry=registry,
        id="progress",
    )(progress_tick)


def login(settings: kopf.OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account if there is one, else the kubeconfig ($KUBECONFIG)."""
    # A registry of our own gets none of kopf's default login handlers: name them here.
    return kopf.login_with_service_account(settings=settings, **kwargs) or (
        kopf.login_with_kubeconfig(settings=settings, **kwargs)
    )


def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Tune kopf once, and connect to the API unless a cluster was handed in (tests)."""
    # One operator per cluster (a Deployment with one replica): no peering objects needed.
    settings.peering.standalone = True
    # Annotations, not status.kopf: the CRD's status schema would prune kopf's own fields.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=crd.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=crd.GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{crd.GROUP}/operator"
    settings.posting.level = logging.INFO
    if getattr(memo, "cluster", None) is None:
        memo.cluster = k8s.Cluster.connect()
    if getattr(memo, "lab_settings", None) is None:
        memo.lab_settings = OperatorSettings.from_env()


def disconnect(memo: kopf.Memo, **_: Any) -> None:
    """Close the API connection pool on shutdown."""
    cluster = getattr(memo, "cluster", None)
    if isinstance(cluster, k8s.Cluster):
        cluster.close()


def parse_lab(
    name: str,
    namespace: str,
    meta: Mapping[str, Any],
    body_spec: Mapping[str, Any],
    settings: OperatorSettings,
) -> NodeLab:
    """The typed lab of a NodeLab resource; raises ``validation.SpecInvalid`` naming the field.

    As the CRD, it refuses a name no child can carry (``names.validate_lab_name``): a NodeLab
    may have got past an older CRD. Beyond the CRD, the operator's own policy
    (``builders.policy_errors``) must allow it.
    """
    parsed = parse_spec(_plain(body_spec), name=name)
    generation = int(meta.get("generation") or 1)
    lab = NodeLab(name=name, namespace=namespace, generation=generation, spec=parsed)
    refused = builders.policy_errors(lab, settings)
    if refused:
        raise validation.SpecInvalid(name, refused)
    return lab


def apply_lab(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    name: str,
    namespace: str | None,
    patch: kopf.Patch,
    memo: Any,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Create or patch a lab's children for its current spec (create, update, resume)."""
    settings: OperatorSettings = memo.lab_settings
    cluster: k8s.Cluster = memo.cluster
    namespace = namespace or "default"  # NodeLab is namespaced; kopf types it optional
    generation = int(meta.get("generation") or 1)
    stamp = _now()
    conditions = list(status.get("conditions") or ())
    try:
        lab = parse_lab(name, namespace, meta, spec, settings)
    except validation.SpecInvalid as exc:
        message = "; ".join(str(error) for error in exc.errors)
        patch.status["phase"] = lab_status.FAILED
        patch.status["observedGeneration"] = generation
        patch.status["conditions"] = lab_status.set_condition(
            conditions,
            lab_status.SPEC_VALID,
            "False",
            "InvalidSpec",
            message,
            generation=generation,
            now=stamp,
        )
        kopf.warn(body, reason="InvalidSpec", message=message)
        # Retrying cannot fix a spec: the next change of it calls this handler again.
        raise kopf.PermanentError(f"invalid spec: {message}") from None

    valid = lab_status.find_condition(conditions, lab_status.SPEC_VALID) or {}
    under_way = status.get("observedGeneration") == generation and valid.get("status") == "True"
    if not under_way:
        conditions = _start_conditions(conditions, generation, stamp)
    try:
        outcomes = _apply_children(lab, body, settings, cluster)
    except k8s.ChildConflict as exc:
        _report_conflict(body, patch, conditions, generation, exc, settings)
        raise kopf.PermanentError(f"{exc}; the progress timer tries again") from None
    deployment = names.deployment(name)
    kopf.info(
        body,
        reason="ChildrenApplied",
        message=(
            f"generation {generation}: Deployment {deployment} {outcomes[deployment]} with "
            f"{lab.spec.node.replicas} pod(s) x {lab.spec.node.workers} worker(s), "
            f"{lab.spec.node.pod_cpu_millicores}m CPU per pod; Services and load account ready"
        ),
    )
    logger.info("children of generation %s: %s", generation, outcomes)

    if under_way:
        return  # a resume of a generation already under way: the progress timer carries on
    patch.status["phase"] = lab_status.DEPLOYING
    patch.status["observedGeneration"] = generation
    patch.status["conditions"] = conditions


def _start_conditions(
    conditions: list[dict[str, Any]], generation: int, stamp: str
) -> list[dict[str, Any]]:
    for type_, state, reason, message in (
        (lab_status.SPEC_VALID, "True", "Valid", "spec accepted"),
        (lab_status.AVAILABLE, "Unknown", "RolloutStarted", f"rolling out generation {generation}"),
        (
            lab_status.LOAD_COMPLETE,
            "Unknown",
            "WaitingForRollout",
            "the load runs once every node pod is ready",
        ),
        (lab_status.SLO_MET, "Unknown", "NoRunYet", f"generation {generation} has not run yet"),
        (CHILDREN_APPLIED, "True", "Applied", _APPLIED),
    ):
        conditions = lab_status.set_condition(
            conditions, type_, state, reason, message, generation=generation, now=stamp
        )
    return conditions


def _report_conflict(
    body: kopf.Body,
    patch: kopf.Patch,
    conditions: list[dict[str, Any]],
    generation: int,
    conflict: k8s.ChildConflict,
    settings: OperatorSettings,
) -> None:
    """ChildrenApplied=False/ChildConflict and phase Failed; a Warning Event if that is news."""
    message = (
        f"{conflict}: the operator leaves it alone and creates its own once it is gone "
        f"(it looks again every {settings.reconcile_interval:g} s)"
    )
    before = lab_status.find_condition(conditions, CHILDREN_APPLIED) or {}
    patch.status["phase"] = lab_status.FAILED
    patch.status["observedGeneration"] = generation
    patch.status["conditions"] = lab_status.set_condition(
        conditions,
        CHILDREN_APPLIED,
        "False",
        "ChildConflict",
        message,
        generation=generation,
        now=_now(),
    )
    if (before.get("reason"), before.get("message")) != ("ChildConflict", message):
        kopf.warn(body, reason="ChildConflict", message=message)


def progress_tick(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    name: str,
    namespace: str | None,
    patch: kopf.Patch,
    memo: Any,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """One look at a lab: observe, decide (``nodelab.progress``), act, write status."""
    settings: OperatorSettings = memo.lab_settings
    cluster: k8s.Cluster = memo.cluster
    namespace = namespace or "default"  # NodeLab is namespaced; kopf types it optional
    generation = int(meta.get("generation") or 1)
    if meta.get("deletionTimestamp"):
        return
    if status.get("observedGeneration") != generation:
        return  # the change handler has not taken this generation in yet
    valid = lab_status.find_condition(status.get("conditions"), lab_status.SPEC_VALID) or {}
    if valid.get("status") != "True":
        return
    try:
        lab = parse_lab(name, namespace, meta, spec, settings)
    except validation.SpecInvalid:
        return  # the change handler reported it
    conditions = list(status.get("conditions") or ())
    applied = lab_status.find_condition(conditions, CHILDREN_APPLIED) or {}
    conflicted = applied.get("status") == "False"
    owner = str(meta.get("uid"))
    try:
        if conflicted:
            _apply_children(lab, body, settings, cluster)  # the object in the way may be gone
        deployment = cluster.get("Deployment", namespace, names.deployment(name))
        if deployment is not None and k8s.controller_uid(deployment) != owner:
            raise k8s.ChildConflict(deployment, "Deployment")
        ready, _how_far = lab_status.rollout_progress(deployment, generation)
        pods = (
            cluster.list("Pod", namespace, names.node_selector(name))
            if deployment and not ready
            else []
        )
        labelled = cluster.list(
            "Job", namespace, {names.INSTANCE_LABEL: name, names.COMPONENT_LABEL: "load"}
        )
        # Labels are anyone's to set: only Jobs this lab controls count, or are deleted.
        jobs = [job for job in labelled if k8s.controller_uid(job) == owner]
        observed = progress.Observation(deployment=deployment, pods=pods, jobs=jobs)
        now = datetime.datetime.now(datetime.UTC)
        decision = progress.decide(lab, _plain(status), observed, settings, now)
        if decision.reapply_children:
            _apply_children(lab, body, settings, cluster)
        if decision.create_job:
            job = builders.build_load_job(lab, settings)
            kopf.adopt(job, owner=body)
            if cluster.apply(job, create_only=True) == "created":
                kopf.info(
                    body,
                    reason="LoadJobCreated",
                    message=_job_summary(lab, job["metadata"]["name"]),
                )
        for job_name in decision.delete_jobs:
            if cluster.delete("Job", namespace, job_name):
                kopf.info(body, reason="LoadJobDeleted", message=f"old load Job {job_name} deleted")
    except k8s.ChildConflict as exc:
        _report_conflict(body, patch, conditions, generation, exc, settings)
        return
    except k8s.ApiError as exc:
        raise _api_failure(exc) from exc
    for event in decision.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    for key, value in decision.status.items():
        patch.status[key] = value
    if conflicted:
        patch.status["conditions"] = lab_status.set_condition(
            decision.status.get("conditions") or conditions,
            CHILDREN_APPLIED,
            "True",
            "Applied",
            _APPLIED,
            generation=generation,
            now=_now(),
        )
        kopf.info(body, reason="ChildrenApplied", message=f"the conflict is over: {_APPLIED}")
    if decision.status:
        logger.debug("status of generation %s: %s", generation, sorted(decision.status))


def _apply_children(
    lab: NodeLab, owner: kopf.Body, settings: OperatorSettings, cluster: k8s.Cluster
) -> dict[str, str]:
    """Create or patch every child in order; ChildConflict stops at the first one in the way."""
    children = builders.build_children(lab, settings)
    kopf.adopt(children, owner=owner)
    outcomes: dict[str, str] = {}
    try:
        for child in children:
            outcomes[child["metadata"]["name"]] = cluster.apply(child)
    except k8s.ApiError as exc:
        if exc.status == 403:
            # Without this Event an RBAC refusal shows only in the operator's log, and the lab
            # just sits there (found on a real API server with one verb removed).
            kopf.warn(
                owner,
                reason="Forbidden",
                message=f"{exc}; the operator's ClusterRole (manifests/rbac/cluster_role.yaml) "
                "must grant it; the operator retries",
            )
        raise _api_failure(exc) from exc
    return outcomes


def _job_summary(lab: NodeLab, job_name: str) -> str:
    node, load = lab.spec.node, lab.spec.load
    return (
        f"load Job {job_name}: {load.concurrency} concurrent clients against "
        f"{node.replicas} pod(s) x {node.workers} worker(s)"
    )


def _api_failure(exc: k8s.ApiError) -> kopf.PermanentError | kopf.TemporaryError:
    if exc.status in _PERMANENT_STATUSES:
        # The server refuses the object itself: retrying the same request cannot succeed.
        return kopf.PermanentError(f"the API refused a child object: {exc}")
    # 403 (RBAC not applied yet), 409 races, 429, 5xx: worth another try soon.
    return kopf.TemporaryError(f"API call failed, retrying: {exc}", delay=10)


def _plain(value: Any) -> Any:
    """A deep plain copy of kopf's mapping views (dict/list of JSON values)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _now() -> str:
    return lab_status.now_rfc3339()
