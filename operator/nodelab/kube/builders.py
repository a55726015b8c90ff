"""Pure builders: the Kubernetes objects of a NodeLab, as plain dicts.

Every function maps (lab, settings) to the manifest the operator sends; nothing here talks to
the API, so each object is checked in unit tests for every phase file. Owner references are
added by the handlers (``kopf.adopt``), which know the owner's uid. The one input that is not the
lab's is the fault token (phase 5): random, made once by the handlers and read back from the
Secret afterwards, so building twice gives the same objects.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from loadgen import cli as loadgen_cli
from loadgen import storm
from loadgen.plan import LoadPlan
from node_service import settings as node_settings
from nodelab.kube.settings import OperatorSettings
from nodelab.model import crd, names, quantity, validation
from nodelab.model.load_plan import load_plan
from nodelab.model.node_flags import node_flag_fields
from nodelab.model.spec import NodeLab

__all__ = [
    "FAULT_TOKEN_DIR",
    "FAULT_TOKEN_FILE",
    "RUN_AS_USER",
    "build_children",
    "build_deployment",
    "build_fault_token_secret",
    "build_headless_service",
    "build_load_argv",
    "build_load_job",
    "build_load_plan",
    "build_loadgen_role",
    "build_loadgen_role_binding",
    "build_loadgen_service_account",
    "build_service",
    "build_slow_deployment",
    "fault_token_of",
    "load_deadline_seconds",
    "node_fields",
    "policy_errors",
    "target_url",
]

RUN_AS_USER = 10001
PORT_NAME = "http"
# Where the fault token Secret is mounted, read-only, in node pods and the load Job's pod.
FAULT_TOKEN_DIR = "/var/run/nodelab/fault"
FAULT_TOKEN_FILE = f"{FAULT_TOKEN_DIR}/{names.FAULT_TOKEN_KEY}"
# Time a load pod takes besides its run: interpreter start, DNS of the headless Service, the
# report's patch. Part of the Job's deadline, so that a run the spec allows is never cut short.
_LOAD_POD_OVERHEAD_S = 120


def _meta(name: str, lab: NodeLab, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": lab.namespace, "labels": dict(labels)}


def policy_errors(lab: NodeLab, settings: OperatorSettings) -> list[validation.FieldError]:
    """What the operator refuses to build for ``lab`` although the CRD accepts it.

    ``spec.node.image`` must be the operator's own image or one of ``allowed_images``: a node
    pod runs whatever image it names, with the permissions of the lab's namespace.
    """
    image = lab.spec.node.image
    allowed = (settings.image, *settings.allowed_images)
    if image is None or image in allowed:
        return []
    return [
        validation.FieldError(
            "spec.node.image",
            f"Forbidden: {image!r} is not an image this operator runs; allowed: "
            f"{', '.join(allowed)} (the operator's NODELAB_ALLOWED_IMAGES adds more)",
        )
    ]


def _pod_security() -> dict[str, Any]:
    # Pod Security Standard "restricted", pod level.
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> dict[str, Any]:
    # Pod Security Standard "restricted", container level (read-only root: /tmp is an emptyDir).
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


_TMP_VOLUME = {"name": "tmp", "emptyDir": {}}
_TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}
_FAULT_VOLUME_NAME = "fault-token"
_FAULT_MOUNT: dict[str, Any] = {
    "name": _FAULT_VOLUME_NAME,
    "mountPath": FAULT_TOKEN_DIR,
    "readOnly": True,
}


def _fault_volume(lab: NodeLab) -> dict[str, Any]:
    return {
        "name": _FAULT_VOLUME_NAME,
        "secret": {
            "secretName": names.fault_token_secret(lab.name),
            "items": [{"key": names.FAULT_TOKEN_KEY, "path": names.FAULT_TOKEN_KEY}],
            # Owner and group only: the pod's user reads it through fsGroup.
            "defaultMode": 0o440,
        },
    }


def _volumes(lab: NodeLab) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(pod volumes, container mounts): /tmp, and the fault token when the lab has a trigger."""
    volumes, mounts = [dict(_TMP_VOLUME)], [dict(_TMP_MOUNT)]
    if lab.spec.trigger is not None:
        volumes.append(_fault_volume(lab))
        mounts.append(dict(_FAULT_MOUNT))
    return volumes, mounts


def _node_resources(lab: NodeLab) -> dict[str, Any]:
    node = lab.spec.node
    cpu = quantity.format_cpu(node.pod_cpu_millicores)
    memory = quantity.format_memory(node.pod_memory_mebibytes)
    # Request = limit: the pod gets exactly workers x cpuPerWorker (Guaranteed QoS), so
    # vertical scaling is a bigger pod that the scheduler must fit on one Kubernetes node.
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu, "memory": memory},
    }


def _probe(*, period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def node_fields(lab: NodeLab, settings: OperatorSettings, *, slow: bool = False) -> dict[str, Any]:
    """The node settings of a lab's pods (``node_service.settings.node_argv``'s fields): the
    work, phase 5's protection and fault token, and for the slow pool (phase 6) its slowness."""
    node = lab.spec.node
    fields: dict[str, Any] = {
        "host": "0.0.0.0",
        "port": settings.node_port,
        "workers": node.workers,
        "load_factor": node.load_factor,
        "io_millis": node.io_millis,
    }
    fields.update(node_flag_fields(node.protection, node.slow_pool if slow else None))
    if lab.spec.trigger is not None:
        fields["fault_token_file"] = FAULT_TOKEN_FILE
    return fields


def _node_replicas(lab: NodeLab, *, slow: bool) -> int:
    node = lab.spec.node
    slow_replicas = node.slow_pool.replicas if node.slow_pool is not None else 0
    return slow_replicas if slow else node.replicas - slow_replicas


def _node_deployment(lab: NodeLab, settings: OperatorSettings, *, slow: bool) -> dict[str, Any]:
    node = lab.spec.node
    selector = names.slow_node_selector(lab.name) if slow else names.node_selector(lab.name)
    name = names.slow_deployment(lab.name) if slow else names.deployment(lab.name)
    command = ["nodelab", "node", *node_settings.node_argv(**node_fields(lab, settings, slow=slow))]
    volumes, mounts = _volumes(lab)
    container = {
        "name": "node",
        "image": node.image or settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": command,
        "env": [
            # The node id in every answer and in the per-pod report is the pod name.
            {
                "name": node_settings.env_var("node_id"),
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            },
        ],
        "ports": [{"name": PORT_NAME, "containerPort": settings.node_port, "protocol": "TCP"}],
        "resources": _node_resources(lab),
        # /health answers while every worker is busy with /work (the CPU part runs off the
        # event loop), so the probes never kill a node that is merely loaded.
        "startupProbe": _probe(period=2, timeout=3, failures=60),
        "readinessProbe": _probe(period=5, timeout=3, failures=3),
        "livenessProbe": _probe(period=10, timeout=5, failures=6),
        "securityContext": _container_security(),
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        # Both Deployments carry the same labels (the Deployment watch selects both); only their
        # selectors and pod templates tell the pools apart.
        "metadata": _meta(name, lab, names.node_labels(lab.name, lab.generation)),
        "spec": {
            "replicas": _node_replicas(lab, slow=slow),
            "selector": {"matchLabels": dict(selector)},
            # Recreate: a bigger pod never waits for room next to the pod it replaces, and a
            # load run never measures a mix of two generations.
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": {**selector, names.COMPONENT_LABEL: "node"}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": _pod_security(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def build_deployment(lab: NodeLab, settings: OperatorSettings) -> dict[str, Any]:
    """The node Deployment: ``replicas`` pods of ``workers`` uvicorn processes each, less the
    slow pool's pods (phase 6), which :func:`build_slow_deployment` runs."""
    return _node_deployment(lab, settings, slow=False)


def build_slow_deployment(lab: NodeLab, settings: OperatorSettings) -> dict[str, Any] | None:
    """The slow pool's Deployment (``spec.node.slowPool``), or None for a lab without one.

    Its pods are the fast ones' but for ``--service-factor``/``--extra-millis``, and for their
    ``app.kubernetes.io/name`` (``names.SLOW_NODE_APP``): the fast Deployment's selector, which
    is immutable, must not count them, nor theirs the fast pods.
    """
    if lab.spec.node.slow_pool is None:
        return None
    return _node_deployment(lab, settings, slow=True)


def fault_token_of(secret: dict[str, Any] | None) -> str | None:
    """The token an existing fault token Secret holds (None if absent or unreadable)."""
    encoded = ((secret or {}).get("data") or {}).get(names.FAULT_TOKEN_KEY)
    if not encoded:
        return None
    try:
        token = base64.b64decode(encoded, validate=True).decode("ascii").strip()
    except (ValueError, UnicodeDecodeError):
        return None
    return token or None


def build_fault_token_secret(lab: NodeLab, token: str) -> dict[str, Any]:
    """The Secret of the fault token (phase 5): the nodes accept ``POST /fault`` with it as a
    bearer token, and the load Job's trigger sends it. ``token`` is made once (the handlers
    read it back from the Secret), so building this again gives the same object."""
    labels = {**names.node_labels(lab.name, lab.generation)}
    del labels[names.GENERATION_LABEL]  # one token for the lab's life, not one per generation
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(names.fault_token_secret(lab.name), lab, labels),
        "type": "Opaque",
        "data": {names.FAULT_TOKEN_KEY: base64.b64encode(token.encode("ascii")).decode("ascii")},
    }


def _service(lab: NodeLab, settings: OperatorSettings, name: str, headless: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "ClusterIP",
        # Every node pod of the lab, fast or slow (a Service's selector may change, unlike a
        # Deployment's): instance and component, which both pools' pods carry.
        "selector": names.node_pods_selector(lab.name),
        "ports": [
            {
                "name": PORT_NAME,
                "port": settings.node_port,
                "targetPort": PORT_NAME,
                "protocol": "TCP",
            }
        ],
    }
    if headless:
        # Only ready pods get a DNS record: the load never targets a pod that is starting.
        spec["clusterIP"] = "None"
        spec["publishNotReadyAddresses"] = False
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, lab, names.node_labels(lab.name, lab.generation)),
        "spec": spec,
    }


def build_service(lab: NodeLab, settings: OperatorSettings) -> dict[str, Any]:
    """The ClusterIP Service spreading requests over the node pods."""
    return _service(lab, settings, names.service(lab.name), headless=False)


def build_headless_service(lab: NodeLab, settings: OperatorSettings) -> dict[str, Any]:
    """The headless Service whose DNS name resolves to every ready pod."""
    return _service(lab, settings, names.headless_service(lab.name), headless=True)


def target_url(lab: NodeLab, settings: OperatorSettings) -> str:
    """The load's target: the headless Service's DNS name (expanded to pods by the loader)."""
    return f"http://{names.headless_service(lab.name)}.{lab.namespace}.svc:{settings.node_port}"


def build_load_plan(lab: NodeLab, settings: OperatorSettings) -> LoadPlan:
    """The load generator's plan for this lab's current generation (``nodelab.model.load_plan``,
    as the local runtime builds it): the headless Service, expanded to one target per pod."""
    return load_plan(
        lab,
        targets=(target_url(lab, settings),),
        calibrate=settings.calibrate_requests,
        expand_dns=True,
        fault_token_file=FAULT_TOKEN_FILE if lab.spec.trigger is not None else None,
    )


def load_deadline_seconds(plan: LoadPlan, settings: OperatorSettings) -> int:
    """The load Job's ``activeDeadlineSeconds``: ``NODELAB_LOAD_DEADLINE``, or longer when the
    run itself may take longer (its calibration, every sweep level or the storm run with its
    retries timing out, and the pod's own start and report), so no run the spec allows is cut."""
    calibration_s = plan.calibrate * plan.timeout_s
    if plan.storm:
        run_s = storm.storm_deadline_s(plan)
    elif plan.sweep:
        run_s = sum(plan.with_concurrency(level).run_deadline_s() for level in plan.sweep)
    else:
        run_s = plan.run_deadline_s()
    needed = math.ceil(calibration_s + run_s) + _LOAD_POD_OVERHEAD_S
    return max(settings.load_deadline_seconds, needed)


def build_load_argv(lab: NodeLab, settings: OperatorSettings) -> list[str]:
    """``nodelab load`` flags of the Job: the plan, the report target, JSON on stdout."""
    return _load_argv(lab, build_load_plan(lab, settings))


def _load_argv(lab: NodeLab, plan: LoadPlan) -> list[str]:
    return loadgen_cli.build_argv(
        plan, json_path="-", report_to=f"{lab.namespace}/{lab.name}", quiet=True
    )


def build_load_job(lab: NodeLab, settings: OperatorSettings) -> dict[str, Any]:
    """The load Job of the lab's current generation; it writes ``status.lastRun`` itself."""
    processes = lab.spec.load.processes
    cpu_request = quantity.format_cpu(
        quantity.cpu_millicores(settings.load_cpu_request) * processes
    )
    cpu_limit = quantity.format_cpu(quantity.cpu_millicores(settings.load_cpu_limit) * processes)
    memory = quantity.format_memory(quantity.memory_mebibytes(settings.load_memory) * processes)
    labels = names.load_job_labels(lab.name, lab.generation)
    plan = build_load_plan(lab, settings)
    volumes, mounts = _volumes(lab)
    container = {
        "name": "load",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["nodelab", "load", *_load_argv(lab, plan)],
        "resources": {
            "requests": {"cpu": cpu_request, "memory": memory},
            "limits": {"cpu": cpu_limit, "memory": memory},
        },
        "securityContext": _container_security(),
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(names.load_job(lab.name, lab.generation), lab, labels),
        "spec": {
            # No retry: a second attempt would measure (and report) a different run.
            "backoffLimit": 0,
            "activeDeadlineSeconds": load_deadline_seconds(plan, settings),
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": names.loadgen_account(lab.name),
                    "enableServiceLinks": False,
                    "securityContext": _pod_security(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def _account_labels(lab: NodeLab) -> dict[str, str]:
    return {
        names.NAME_LABEL: "nodelab-load",
        names.INSTANCE_LABEL: lab.name,
        names.COMPONENT_LABEL: "load",
        names.MANAGED_BY_LABEL: "nodelab-operator",
    }


def build_loadgen_service_account(lab: NodeLab, settings: OperatorSettings) -> dict[str, Any]:
    """The ServiceAccount the load Job runs as."""
    del settings
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(names.loadgen_account(lab.name), lab, _account_labels(lab)),
    }


def build_loadgen_role(lab: NodeLab, settings: OperatorSettings) -> dict[str, Any]:
    """Least privilege for the load Job: read this NodeLab, patch its status, nothing else."""
    del settings
    only_this = [lab.name]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(names.loadgen_account(lab.name), lab, _account_labels(lab)),
        "rules": [
            {
                "apiGroups": [crd.GROUP],
                "resources": [crd.PLURAL],
                "resourceNames": only_this,
                "verbs": ["get"],
            },
            {
                "apiGroups": [crd.GROUP],
                "resources": [f"{crd.PLURAL}/status"],
                "resourceNames": only_this,
                "verbs": ["get", "patch"],
            },
        ],
    }


def build_loadgen_role_binding(lab: NodeLab, settings: OperatorSettings) -> dict[str, Any]:
    """Binds the load Job's Role to its ServiceAccount."""
    del settings
    account = names.loadgen_account(lab.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(account, lab, _account_labels(lab)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": lab.namespace}],
    }


def build_children(
    lab: NodeLab, settings: OperatorSettings, *, fault_token: str | None = None
) -> list[dict[str, Any]]:
    """Everything a lab needs before its load runs, in the order to create it.

    A lab with a trigger (phase 5) needs ``fault_token`` (ValueError without): its Secret comes
    before the pods that mount it. A slow pool (phase 6) adds its Deployment after the fast one.
    """
    secret: list[dict[str, Any]] = []
    if lab.spec.trigger is not None:
        if not fault_token:
            raise ValueError(f"NodeLab {lab.name} has a trigger: its fault token is needed")
        secret.append(build_fault_token_secret(lab, fault_token))
    slow = build_slow_deployment(lab, settings)
    return [
        build_loadgen_service_account(lab, settings),
        build_loadgen_role(lab, settings),
        build_loadgen_role_binding(lab, settings),
        *secret,
        build_deployment(lab, settings),
        *([slow] if slow is not None else []),
        build_service(lab, settings),
        build_headless_service(lab, settings),
    ]
