"""The kopf handlers: thin glue between kopf, the builders and the status logic.

Two kinds of work, both idempotent:

* on create, spec update and operator resume (``apply_lab``): validate the spec, create or
  patch the children (ServiceAccount, Role, RoleBinding, the fault token Secret of a lab with a
  trigger, the node Deployment and the slow pool's, two Services), adopt them, delete a slow
  pool's Deployment the spec no longer has, and start a new generation's status (Deploying);
* the reconcile step (``reconcile_lab``): read the lab, observe its Deployment, pods and Jobs,
  let :func:`nodelab.kube.reconcile.decide` choose the next step, carry it out, write status.
  A change of one of the lab's children asks for it (``child_changed``: kopf watches filtered by the
  children's labels, :data:`nodelab.kube.reconcile.WATCHES`), so does ``apply_lab`` as it ends, and
  so does the ``reconcile`` timer every ``reconcile_interval`` seconds, a safety net.

Every request for a lab's step goes through one :class:`LabGate`: one step at a time per lab,
each reading the lab afresh, and requests arriving meanwhile folded into one more step. The
step writes status with the resourceVersion it read, so a lab changed in between (a spec
update, the load Job's report) is read and decided again, never overwritten from a stale copy.

Handlers are synchronous on purpose: kopf runs them in its thread pool, so the blocking
``kubernetes`` client never stalls the event loop the watches (and, in tests, the emulated
API server) run on. Status holds only the fields the operator owns (``lastRun`` belongs to the
load Job), written through the operator's own client (a merge patch on the status subresource,
with the resourceVersion read), since a child's handler can patch only that child; only an
invalid spec's status goes through kopf's ``patch``, as no step ever writes that of such a lab.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

import kopf

from loadgen import timestamps
from nodelab.kube import builders, children, cluster_api, reconcile
from nodelab.kube.settings import OperatorSettings
from nodelab.model import conditions as lab_conditions
from nodelab.model import crd, names, validation
from nodelab.model.spec import NodeLab, parse_spec

__all__ = [
    "LabGate",
    "apply_lab",
    "child_changed",
    "configure",
    "disconnect",
    "login",
    "parse_lab",
    "reconcile_lab",
    "reconcile_tick",
    "register",
]

logger = logging.getLogger(__name__)

_RESOURCE = (crd.GROUP, crd.VERSION, crd.PLURAL)
# True once every child exists and this lab controls it; False (ChildConflict) while an object
# it does not control has a child's name, which the operator then leaves alone.
CHILDREN_APPLIED = "ChildrenApplied"
_APPLIED = "every child exists and this NodeLab controls it"
# Conflicts and server trouble pass; a refused object (bad request, invalid) does not.
_PERMANENT_STATUSES = {400, 404, 422}
# Reads of a lab that changed before its status was written, before the step gives up for now.
_STALE_READS = 3
_MERGE_PATCH = "application/merge-patch+json"
# Random bytes of a new fault token (phase 5), URL-safe base64: 43 characters.
_FAULT_TOKEN_BYTES = 32

LabKey = tuple[str, str]  # (namespace, name)


class LabGate:
    """One reconcile step at a time per lab; requests meanwhile are folded into one more step.

    :meth:`request` runs the step now, or, if a step is already under way for that lab, marks
    that another is wanted and returns at once: the thread running the steps goes round once
    more when its step ends, and that step reads everything again. So a tick and a watch event
    that race never act at the same time, nor on what the other has just changed, a burst of
    pod events costs two steps rather than one each, and no kopf worker thread waits for a
    step. :meth:`exclusive` (the change handlers) waits until no step runs, then holds the lab.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._busy: set[LabKey] = set()  # a step or an apply holds the lab
        self._stepping: set[LabKey] = set()  # a thread runs this lab's steps
        self._wanted: set[LabKey] = set()  # a step was asked for and has not started yet

    @contextlib.contextmanager
    def exclusive(self, key: LabKey) -> Iterator[None]:
        """Hold the lab: wait until nothing else does, keep others out until the block ends."""
        with self._changed:
            while key in self._busy:
                self._changed.wait()
            self._busy.add(key)
        try:
            yield
        finally:
            with self._changed:
                self._busy.discard(key)
                self._changed.notify_all()

    def request(self, key: LabKey, step: Callable[[], None]) -> bool:
        """Have ``step`` run for the lab; True if this call ran it, False if folded into another.

        An exception from ``step`` ends this call's steps and is raised; a step asked for
        meanwhile waits for the next request (the timer's, at the latest).
        """
        with self._changed:
            self._wanted.add(key)
            if key in self._stepping:
                return False
            self._stepping.add(key)
        try:
            while True:
                with self._changed:
                    if key not in self._wanted:
                        self._stepping.discard(key)
                        return True
                    self._wanted.discard(key)
                with self.exclusive(key):
                    step()
        except BaseException:
            with self._changed:
                self._stepping.discard(key)
            raise


class _StatusMoved(Exception):
    """The lab changed between the step's read and its status write (409): read it again."""


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Register every handler in ``registry``; the timer's interval comes from ``settings``."""
    kopf.on.login(registry=registry, id="login")(login)
    kopf.on.startup(registry=registry, id="configure")(configure)
    kopf.on.cleanup(registry=registry, id="disconnect")(disconnect)
    kopf.on.create(*_RESOURCE, registry=registry, id="apply-on-create")(apply_lab)
    kopf.on.update(*_RESOURCE, field="spec", registry=registry, id="apply-on-update")(apply_lab)
    kopf.on.resume(*_RESOURCE, registry=registry, id="apply-on-resume")(apply_lab)
    for watch in reconcile.WATCHES:
        # Filtered here as well as by the server (configure): a server that ignores the
        # selector must not widen what wakes the step.
        labels: dict[str, Any] = {  # a value, kopf.PRESENT, or one of several values
            key: _label_filter(value) for key, value in watch.labels.items()
        }
        kopf.on.event(
            watch.group,
            watch.version,
            watch.plural,
            labels=labels,
            registry=registry,
            id=f"reconcile-on-{watch.plural}",
        )(child_changed)
    kopf.timer(
        *_RESOURCE,
        interval=settings.reconcile_interval,
        registry=registry,
        id="reconcile",
    )(reconcile_tick)


def _label_filter(value: str | tuple[str, ...] | None) -> Any:
    if value is None:
        return kopf.PRESENT
    if isinstance(value, tuple):
        allowed = frozenset(value)
        return lambda found, **_: found in allowed
    return value


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
    # The children's watches ask the server for the lab's children only, not every pod.
    for watch in reconcile.WATCHES:
        settings.watching.label_selectors[watch.group, watch.version, watch.plural] = watch.selector
    if getattr(memo, "cluster", None) is None:
        memo.cluster = cluster_api.Cluster.connect()
    if getattr(memo, "lab_settings", None) is None:
        memo.lab_settings = OperatorSettings.from_env()
    if getattr(memo, "lab_gate", None) is None:
        memo.lab_gate = LabGate()


def disconnect(memo: kopf.Memo, **_: Any) -> None:
    """Close the API connection pool on shutdown."""
    cluster = getattr(memo, "cluster", None)
    if isinstance(cluster, cluster_api.Cluster):
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
    """Create or patch a lab's children for its current spec (create, update, resume), write
    the status that starts its generation, then take the first reconcile step at once.

    Holds the lab's gate while it applies: no reconcile step applies children or acts for this
    lab meanwhile. The step right after matters where no child would wake one: a change of the
    load only leaves the rollout ready, and its Job is due now.
    """
    gate: LabGate = memo.lab_gate
    namespace = namespace or "default"  # NodeLab is namespaced; kopf types it optional
    with gate.exclusive((namespace, name)):
        _apply_lab(body, spec, meta, status, name, namespace, patch, memo, logger)
    _quietly(memo, namespace, name, logger)


def _apply_lab(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    name: str,
    namespace: str,
    patch: kopf.Patch,
    memo: Any,
    logger: kopf.Logger,
) -> None:
    settings: OperatorSettings = memo.lab_settings
    cluster: cluster_api.Cluster = memo.cluster
    generation = int(meta.get("generation") or 1)
    stamp = _now()
    conditions = list(status.get("conditions") or ())
    found: dict[str, Any] = _plain(body)
    try:
        lab = parse_lab(name, namespace, meta, spec, settings)
    except validation.SpecInvalid as exc:
        message = "; ".join(str(error) for error in exc.errors)
        # kopf's own patch as the handler ends: no reconcile step acts on, or writes, a lab
        # whose spec is invalid, so nothing races this write.
        patch.status["phase"] = lab_conditions.FAILED
        patch.status["observedGeneration"] = generation
        patch.status["conditions"] = lab_conditions.set_condition(
            conditions,
            lab_conditions.SPEC_VALID,
            "False",
            "InvalidSpec",
            message,
            generation=generation,
            now=stamp,
        )
        kopf.warn(body, reason="InvalidSpec", message=message)
        # Retrying cannot fix a spec: the next change of it calls this handler again.
        raise kopf.PermanentError(f"invalid spec: {message}") from None

    valid = lab_conditions.find_condition(conditions, lab_conditions.SPEC_VALID) or {}
    under_way = status.get("observedGeneration") == generation and valid.get("status") == "True"

    def started(current: Mapping[str, Any]) -> list[dict[str, Any]]:
        before = list(current.get("conditions") or ())
        return before if under_way else _start_conditions(before, generation, stamp)

    try:
        outcomes = _apply_children(lab, body, settings, cluster)
    except cluster_api.ChildConflict as exc:
        conflict = exc
        _fields, warning = _conflict_status(started(status), generation, conflict, settings)
        _update_status(
            cluster,
            found,
            generation,
            lambda current: _conflict_status(started(current), generation, conflict, settings)[0],
        )
        if warning:
            kopf.warn(body, reason="ChildConflict", message=warning)
        raise kopf.PermanentError(f"{conflict}; the reconcile timer tries again") from None
    deployment = names.deployment(name)
    pool = lab.spec.node.slow_pool
    slow = names.slow_deployment(name)
    slow_words = (
        f" ({pool.replicas} of them slow: Deployment {slow} {outcomes[slow]})"
        if pool is not None
        else (f"; Deployment {slow} deleted" if outcomes.get(slow) == "deleted" else "")
    )
    kopf.info(
        body,
        reason="ChildrenApplied",
        message=(
            f"generation {generation}: Deployment {deployment} {outcomes[deployment]} with "
            f"{lab.spec.node.replicas} pod(s) x {lab.spec.node.workers} worker(s), "
            f"{lab.spec.node.pod_cpu_millicores}m CPU per pod{slow_words}; Services and load "
            "account ready"
        ),
    )
    logger.info("children of generation %s: %s", generation, outcomes)

    if under_way:
        return  # a resume of a generation already under way: the reconcile step carries on
    _update_status(
        cluster,
        found,
        generation,
        lambda current: {
            "phase": lab_conditions.DEPLOYING,
            "observedGeneration": generation,
            "conditions": started(current),
        },
    )


def _start_conditions(
    conditions: list[dict[str, Any]], generation: int, stamp: str
) -> list[dict[str, Any]]:
    for type_, state, reason, message in (
        (lab_conditions.SPEC_VALID, "True", "Valid", "spec accepted"),
        (
            lab_conditions.AVAILABLE,
            "Unknown",
            "RolloutStarted",
            f"rolling out generation {generation}",
        ),
        (
            lab_conditions.LOAD_COMPLETE,
            "Unknown",
            "WaitingForRollout",
            "the load runs once every node pod is ready",
        ),
        (lab_conditions.SLO_MET, "Unknown", "NoRunYet", f"generation {generation} has not run yet"),
        (CHILDREN_APPLIED, "True", "Applied", _APPLIED),
    ):
        conditions = lab_conditions.set_condition(
            conditions, type_, state, reason, message, generation=generation, now=stamp
        )
    return conditions


def _conflict_status(
    conditions: list[dict[str, Any]],
    generation: int,
    conflict: cluster_api.ChildConflict,
    settings: OperatorSettings,
) -> tuple[dict[str, Any], str | None]:
    """Status of a ChildConflict (ChildrenApplied=False, phase Failed), and the message of the
    Warning Event to post if that is news (else None)."""
    message = (
        f"{conflict}: the operator leaves it alone and creates its own once it is gone "
        f"(it looks again every {settings.reconcile_interval:g} s)"
    )
    before = lab_conditions.find_condition(conditions, CHILDREN_APPLIED) or {}
    fields = {
        "phase": lab_conditions.FAILED,
        "observedGeneration": generation,
        "conditions": lab_conditions.set_condition(
            conditions,
            CHILDREN_APPLIED,
            "False",
            "ChildConflict",
            message,
            generation=generation,
            now=_now(),
        ),
    }
    news = (before.get("reason"), before.get("message")) != ("ChildConflict", message)
    return fields, message if news else None


# --- the reconcile step and what asks for it ---------------------------------------------------


def reconcile_tick(
    name: str, namespace: str | None, meta: kopf.Meta, status: kopf.Status, memo: Any, **_: Any
) -> None:
    """The safety-net timer: the same step the watches ask for, through the lab's gate.

    A lab that kopf's copy shows needs nothing from the step (being deleted, a generation not
    taken in yet, an invalid spec) costs no request: its next change wakes the step anyway.
    """
    if reconcile.wants_reconcile(meta, status):
        _request_reconcile(memo, namespace or "default", name)


def child_changed(body: kopf.Body, namespace: str | None, memo: Any, **kwargs: Any) -> None:
    """A watched child changed (added, modified, deleted): a step for the lab it belongs to."""
    lab = reconcile.owning_lab(body)
    if lab is not None:
        _quietly(memo, namespace or "default", lab, kwargs.get("logger"))


def _quietly(
    memo: Any, namespace: str, name: str, log: logging.Logger | logging.LoggerAdapter[Any] | None
) -> None:
    # kopf never retries an event handler: log the failure, the timer tries again.
    try:
        _request_reconcile(memo, namespace, name)
    except (kopf.TemporaryError, kopf.PermanentError) as exc:
        settings: OperatorSettings = memo.lab_settings
        (log or logger).warning(
            "reconcile of NodeLab %s/%s: %s; the timer tries again within %g s",
            namespace,
            name,
            exc,
            settings.reconcile_interval,
        )


def _request_reconcile(memo: Any, namespace: str, name: str) -> None:
    gate: LabGate = memo.lab_gate
    settings: OperatorSettings = memo.lab_settings
    cluster: cluster_api.Cluster = memo.cluster
    gate.request((namespace, name), lambda: reconcile_lab(cluster, settings, namespace, name))


def reconcile_lab(
    cluster: cluster_api.Cluster, settings: OperatorSettings, namespace: str, name: str
) -> None:
    """One look at a lab, read afresh: observe, decide (``reconcile``), act, write status.

    Callers go through the lab's :class:`LabGate`. A lab that changed before its status was
    written is read and decided again (a few times, then a TemporaryError); a lab that is gone
    ends it quietly.
    """
    for _ in range(_STALE_READS):
        try:
            found = cluster.request("GET", _lab_path(namespace, name))
        except cluster_api.ApiError as exc:
            if exc.status == 404:
                return  # deleted: its children go with it
            raise _api_failure(exc) from exc
        try:
            _reconcile_once(found, cluster, settings)
        except _StatusMoved:
            continue
        return
    raise kopf.TemporaryError(
        f"NodeLab {namespace}/{name} changed under each of {_STALE_READS} reconcile steps",
        delay=1,
    )


def _reconcile_once(
    found: dict[str, Any], cluster: cluster_api.Cluster, settings: OperatorSettings
) -> None:
    body = kopf.Body(cast(kopf.RawBody, found))
    meta: Mapping[str, Any] = found.get("metadata") or {}
    spec: Mapping[str, Any] = found.get("spec") or {}
    status: Mapping[str, Any] = found.get("status") or {}
    name = str(meta.get("name"))
    namespace = str(meta.get("namespace") or "default")
    generation = int(meta.get("generation") or 1)
    if not reconcile.wants_reconcile(meta, status):
        return
    try:
        lab = parse_lab(name, namespace, meta, spec, settings)
    except validation.SpecInvalid:
        return  # the change handler reported it
    conditions = list(status.get("conditions") or ())
    applied = lab_conditions.find_condition(conditions, CHILDREN_APPLIED) or {}
    conflicted = applied.get("status") == "False"
    owner = str(meta.get("uid"))
    try:
        if conflicted:
            _apply_children(lab, body, settings, cluster)  # the object in the way may be gone
        deployment = cluster.get("Deployment", namespace, names.deployment(name))
        if deployment is not None and cluster_api.controller_uid(deployment) != owner:
            raise cluster_api.ChildConflict(deployment, "Deployment")
        slow_pool = lab.spec.node.slow_pool is not None
        slow = cluster.get("Deployment", namespace, names.slow_deployment(name))
        if slow is not None and cluster_api.controller_uid(slow) != owner:
            if slow_pool:
                raise cluster_api.ChildConflict(slow, "Deployment")
            slow = None  # someone else's, and no longer in the lab's way
        ready, _how_far = children.fleet_progress(deployment, slow, generation, slow_pool=slow_pool)
        pods = (
            cluster.list("Pod", namespace, names.node_pods_selector(name))
            if deployment and not ready
            else []
        )
        labelled = cluster.list(
            "Job", namespace, {names.INSTANCE_LABEL: name, names.COMPONENT_LABEL: "load"}
        )
        # Labels are anyone's to set: only Jobs this lab controls count, or are deleted.
        jobs = [job for job in labelled if cluster_api.controller_uid(job) == owner]
        observed = reconcile.Observation(
            deployment=deployment, pods=pods, jobs=jobs, slow_deployment=slow
        )
        now = datetime.datetime.now(datetime.UTC)
        decision = reconcile.decide(lab, status, observed, settings, now)
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
    except cluster_api.ChildConflict as exc:
        fields, warning = _conflict_status(conditions, generation, exc, settings)
        _write_status(cluster, found, fields)
        if warning:
            kopf.warn(body, reason="ChildConflict", message=warning)
        return
    except cluster_api.ApiError as exc:
        raise _api_failure(exc) from exc
    fields = dict(decision.status)
    if conflicted:
        fields["conditions"] = lab_conditions.set_condition(
            decision.status.get("conditions") or conditions,
            CHILDREN_APPLIED,
            "True",
            "Applied",
            _APPLIED,
            generation=generation,
            now=_now(),
        )
    _write_status(cluster, found, fields)
    # Posted once the status they describe is written: a step read again posts them then.
    for event in decision.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    if conflicted:
        kopf.info(body, reason="ChildrenApplied", message=f"the conflict is over: {_APPLIED}")
    if fields:
        logger.debug(
            "status of %s/%s generation %s: %s", namespace, name, generation, sorted(fields)
        )


def _update_status(
    cluster: cluster_api.Cluster,
    found: dict[str, Any],
    generation: int,
    fields_for: Callable[[Mapping[str, Any]], Mapping[str, Any]],
) -> None:
    """Write ``fields_for(status)`` into the lab's status for ``generation``, from ``found``
    (kopf's copy) and, if the lab has moved since (409), from a fresh read; nothing once a
    newer generation is there (its own change handler writes it) or the lab is gone."""
    meta = found.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
    for _ in range(_STALE_READS):
        if int((found.get("metadata") or {}).get("generation") or 1) != generation:
            return
        try:
            _write_status(cluster, found, fields_for(found.get("status") or {}))
            return
        except _StatusMoved:
            pass
        try:
            found = cluster.request("GET", _lab_path(namespace, name))
        except cluster_api.ApiError as exc:
            if exc.status == 404:
                return
            raise _api_failure(exc) from exc
    raise kopf.TemporaryError(
        f"NodeLab {namespace}/{name} changed under each of {_STALE_READS} status writes", delay=1
    )


def _lab_path(namespace: str, name: str) -> str:
    return f"/apis/{crd.GROUP}/{crd.VERSION}/namespaces/{namespace}/{crd.PLURAL}/{name}"


def _write_status(
    cluster: cluster_api.Cluster, found: Mapping[str, Any], fields: Mapping[str, Any]
) -> None:
    """Merge-patch ``fields`` into the lab's status if the lab is still as ``found`` was.

    The resourceVersion read is the patch's precondition: 409 if anything (a spec change, the
    change handler's own write, the load Job's report) wrote the lab since, and then
    :class:`_StatusMoved`. Nothing to write, no request.
    """
    if not fields:
        return
    meta = found.get("metadata") or {}
    body: dict[str, Any] = {"status": dict(fields)}
    if meta.get("resourceVersion"):
        body["metadata"] = {"resourceVersion": meta["resourceVersion"]}
    path = f"{_lab_path(str(meta.get('namespace')), str(meta.get('name')))}/status"
    try:
        cluster.request("PATCH", path, body, content_type=_MERGE_PATCH)
    except cluster_api.ApiError as exc:
        if exc.status == 409:
            raise _StatusMoved from exc
        if exc.status == 404:
            return  # the lab is gone
        raise _api_failure(exc) from exc


def _apply_children(
    lab: NodeLab, owner: kopf.Body, settings: OperatorSettings, cluster: cluster_api.Cluster
) -> dict[str, str]:
    """Create or patch every child in order; ChildConflict stops at the first one in the way.
    Then a slow pool's Deployment the spec no longer has is deleted (if the lab controls it)."""
    owner_uid = str((owner.get("metadata") or {}).get("uid"))
    try:
        token = _fault_token(lab, owner_uid, cluster)
        children = builders.build_children(lab, settings, fault_token=token)
        kopf.adopt(children, owner=owner)
        outcomes: dict[str, str] = {}
        for child in children:
            outcomes[child["metadata"]["name"]] = cluster.apply(child)
        if lab.spec.node.slow_pool is None:
            slow = names.slow_deployment(lab.name)
            if cluster.delete_controlled("Deployment", lab.namespace, slow, owner_uid):
                outcomes[slow] = "deleted"
    except cluster_api.ApiError as exc:
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


def _fault_token(lab: NodeLab, owner_uid: str, cluster: cluster_api.Cluster) -> str | None:
    """The fault token of a lab with a trigger: the one its Secret holds, made once.

    Never rotated by a reconcile: the nodes read it when they start and the load Job when it
    runs, so a new token per apply would lock the trigger out of nodes started before. Someone
    else's Secret under that name is not read: the apply that follows reports the conflict.
    """
    if lab.spec.trigger is None:
        return None
    existing = cluster.get("Secret", lab.namespace, names.fault_token_secret(lab.name))
    if existing is not None and cluster_api.controller_uid(existing) == owner_uid:
        token = builders.fault_token_of(existing)
        if token:
            return token
    return secrets.token_urlsafe(_FAULT_TOKEN_BYTES)


def _job_summary(lab: NodeLab, job_name: str) -> str:
    node, load = lab.spec.node, lab.spec.load
    return (
        f"load Job {job_name}: {load.concurrency} concurrent clients against "
        f"{node.replicas} pod(s) x {node.workers} worker(s)"
    )


def _api_failure(exc: cluster_api.ApiError) -> kopf.PermanentError | kopf.TemporaryError:
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
    return timestamps.rfc3339()
