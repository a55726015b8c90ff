"""What only real controllers and a real scheduler show: the hardware max with the scheduler's
own words, an operator restarted mid-run, and garbage collection through owner references."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.cluster.conftest import eventually
from tests.cluster.test_phases import PHASES, completed, scaled
from tests.support.cluster.harness import Cluster, KubectlError


def _lab(name: str, **node: Any) -> dict[str, Any]:
    document = scaled(PHASES[0])
    document["metadata"]["name"] = name
    document["spec"]["node"].update(node)
    return document


def _apply(cluster: Cluster, namespace: str, document: dict[str, Any]) -> int:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(document))
    lab = cluster.get("nodelab", "-n", namespace, document["metadata"]["name"])
    return int(lab["metadata"]["generation"])


def _condition(cluster: Cluster, namespace: str, name: str, kind: str) -> dict[str, Any]:
    status = cluster.get("nodelab", "-n", namespace, name).get("status") or {}
    found = [c for c in status.get("conditions") or [] if c["type"] == kind]
    return found[0] if found else {}


def test_a_pod_bigger_than_any_node_is_the_hardware_max_in_the_schedulers_words(
    cluster: Cluster, namespace: str
) -> None:
    name = "too-big"
    # 20 workers x 500m = 10 CPUs; the nodes have 6 each.
    _apply(cluster, namespace, _lab(name, workers=20))

    def unschedulable() -> dict[str, Any] | None:
        condition = _condition(cluster, namespace, name, "Available")
        return condition if condition.get("reason") == "Unschedulable" else None

    condition = eventually(unschedulable, timeout=60, what="Available=False/Unschedulable")
    assert condition["status"] == "False"
    message = condition["message"]
    assert "0/3 nodes are available: 3 Insufficient cpu" in message, message
    assert "spec.node.workers" in message, message  # says what to change
    # Shrink the pod below a node: the lab leaves the hardware max and runs.
    generation = _apply(cluster, namespace, _lab(name, workers=4))
    eventually(
        lambda: completed(cluster, namespace, name, generation),
        timeout=120,
        what="Completed after the spec shrank",
    )
    assert _condition(cluster, namespace, name, "Available")["status"] == "True"


def _jobs(cluster: Cluster, namespace: str, name: str) -> list[str]:
    jobs = cluster.get("jobs", "-n", namespace, "-l", f"app.kubernetes.io/instance={name}")
    return sorted(job["metadata"]["name"] for job in jobs["items"])


def _operator_pod(cluster: Cluster) -> str:
    pods = cluster.get(
        "pods", "-n", "nodelab-system", "-l", "app.kubernetes.io/name=nodelab-operator"
    )["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert running, pods
    return str(running[0]["metadata"]["name"])


def test_an_operator_restarted_mid_run_makes_exactly_one_job_per_generation(
    cluster: Cluster, namespace: str
) -> None:
    name = "restarted"
    document = _lab(name)
    # A load long enough to restart the operator while it runs.
    document["spec"]["load"] = {"concurrency": 2, "durationSeconds": 8}
    generation = _apply(cluster, namespace, document)

    def loading() -> bool:
        status = cluster.get("nodelab", "-n", namespace, name).get("status") or {}
        return status.get("phase") == "Loading"

    eventually(loading, timeout=90, what="the lab Loading")
    old = _operator_pod(cluster)
    cluster.kubectl("delete", "pod", "-n", "nodelab-system", old, "--wait=true")
    cluster.kubectl(
        "-n", "nodelab-system", "rollout", "status", "deployment/nodelab-operator",
        "--timeout=90s",
    )  # fmt: skip
    assert _operator_pod(cluster) != old
    lab = eventually(
        lambda: completed(cluster, namespace, name, generation), timeout=120, what="Completed"
    )
    assert lab["status"]["lastRun"]["generation"] == generation
    assert _jobs(cluster, namespace, name) == [f"{name}-load-g{generation}"]


def test_deleting_a_nodelab_lets_the_garbage_collector_remove_its_children(
    cluster: Cluster, namespace: str
) -> None:
    name = "short-lived"
    generation = _apply(cluster, namespace, _lab(name))
    eventually(lambda: completed(cluster, namespace, name, generation), timeout=120, what="done")
    kinds = "deployments,services,serviceaccounts,roles,rolebindings,jobs,pods"
    selector = f"app.kubernetes.io/instance={name}"
    before = cluster.get(kinds, "-n", namespace, "-l", selector)["items"]
    assert {item["kind"] for item in before} >= {
        "Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "Job", "Pod",
    }  # fmt: skip
    cluster.kubectl("delete", "nodelab", "-n", namespace, name, "--wait=true", timeout=120)
    with pytest.raises(KubectlError, match="NotFound"):
        cluster.get("nodelab", "-n", namespace, name)

    def gone() -> bool:
        return not cluster.get(kinds, "-n", namespace, "-l", selector)["items"]

    eventually(gone, timeout=90, what="every child garbage-collected")
