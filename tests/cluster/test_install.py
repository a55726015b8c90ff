"""`kubectl apply -k manifests/` on a real API server: accepted, Established, explained."""

from __future__ import annotations

from tests.cluster.conftest import ROOT
from tests.support.cluster.harness import Cluster


def test_manifests_apply_cleanly_and_again_unchanged(cluster: Cluster) -> None:
    again = cluster.kubectl("apply", "-k", str(ROOT / "manifests")).stdout
    lines = [line for line in again.splitlines() if line.strip()]
    assert lines and all(line.endswith("unchanged") for line in lines), again


def test_crd_is_established_and_structural(cluster: Cluster) -> None:
    crd = cluster.get("crd", "nodelabs.lab.nodelab.dev")
    conditions = {c["type"]: c for c in crd["status"]["conditions"]}
    assert conditions["Established"]["status"] == "True"
    assert conditions["NamesAccepted"]["status"] == "True"
    # A schema the server finds non-structural is accepted but flagged here.
    assert "NonStructuralSchema" not in conditions, conditions


def test_kubectl_explain_prints_the_field_description(cluster: Cluster) -> None:
    out = cluster.kubectl("explain", "nodelab.spec.node.workers").stdout
    assert "FIELD: workers" in out or "FIELD:    workers" in out, out
    assert "uvicorn" in out.lower() or "worker process" in out.lower(), out


def test_operator_runs_under_its_service_account(cluster: Cluster) -> None:
    pods = cluster.get(
        "pods", "-n", "nodelab-system", "-l", "app.kubernetes.io/name=nodelab-operator"
    )["items"]
    assert len(pods) == 1
    pod = pods[0]
    assert pod["spec"]["serviceAccountName"] == "nodelab-operator"
    assert pod["status"]["phase"] == "Running"
    auth = cluster.kubectl(
        "auth", "can-i", "create", "deployments", "-n", "default",
        "--as=system:serviceaccount:nodelab-system:nodelab-operator",
    )  # fmt: skip
    assert auth.stdout.strip() == "yes"
