"""Row 6: the operator as users run it, in its pod under its ServiceAccount, against a real
kube-apiserver with real controllers and scheduler (the cluster kit, ``tests/support/cluster``).

* 6a: one NodeLab created -> its Deployment, both Services and the load account exist;
* 6b: the last node pod Ready -> the load Job exists (target: within 1 s; the operator reacts
  to its children, the timer is only a safety net);
* 6c: 100 NodeLabs at once -> every one has its children. The nodes are cordoned for this row,
  so the scheduler leaves the 100 node pods Pending and no node process starts: the row times
  the operator and the API, not 100 uvicorn start-ups on two cores.

Times are observed by polling the API every 20 ms, so each carries up to 20 ms of that.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench.common import Context, say
from bench.table import Row, judge
from tests.support.cluster import harness
from tests.support.cluster.api import Api
from tests.support.cluster.kubelet import node_names

__all__ = ["run"]

ROOT = Path(__file__).resolve().parents[1]
CREATE_TARGET_S = 1.0
JOB_TARGET_S = 1.0
FLEET_TARGET_S = 30.0
FULL_FLEET = 100
_POLL_S = 0.02
NAMESPACE = "bench"


def _lab(name: str) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "manifests/phases/phase-1-overwhelm.yaml").read_text())
    document["metadata"] = {"name": name, "namespace": NAMESPACE}
    document["spec"]["node"]["work"]["loadFactor"] = 20
    document["spec"]["load"] = {"concurrency": 1, "requests": 5}
    return dict(document)


def _until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``check()`` holds, polled every 20 ms; TimeoutError past ``timeout``."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if check():
            return time.perf_counter() - started
        time.sleep(_POLL_S)  # the row's clock resolution
    raise TimeoutError(f"{what}: not after {timeout:.0f}s")


def _has_children(api: Api, name: str) -> bool:
    base = f"/api/v1/namespaces/{NAMESPACE}"
    return all(
        api.get(path) is not None
        for path in (
            f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}-node",
            f"{base}/services/{name}-node",
            f"{base}/services/{name}-node-headless",
            f"{base}/serviceaccounts/{name}-loadgen",
        )
    )


def _node_pods_ready(api: Api, name: str) -> bool:
    pods = api.call(
        "GET",
        f"/api/v1/namespaces/{NAMESPACE}/pods",
        query={
            "labelSelector": f"app.kubernetes.io/instance={name},app.kubernetes.io/component=node"
        },
    )["items"]
    return bool(pods) and all(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions") or []
        )
        for p in pods
    )


def _create(api: Api, name: str) -> None:
    api.call("POST", f"/apis/lab.nodelab.dev/v1alpha1/namespaces/{NAMESPACE}/nodelabs", _lab(name))


def run(ctx: Context) -> list[Row]:
    """Measure row 6 on a fresh test cluster; skipped where the cluster kit cannot run."""
    reason = harness.unavailable_reason()
    figure = "operator on a real API server"
    if reason:
        return [Row.skipped("6", figure, "-", "-", reason)]
    fleet = 25 if ctx.quick else FULL_FLEET
    with (
        tempfile.TemporaryDirectory(prefix="nodelab-bench-cluster-") as tmp,
        harness.running_cluster(Path(tmp), nodes=3, cpu="6") as cluster,
    ):
        started = time.perf_counter()
        cluster.kubectl("apply", "-k", str(ROOT / "manifests"))
        cluster.kubectl(
                "wait", "--for=condition=Established", "--timeout=60s",
                "crd/nodelabs.lab.nodelab.dev",
            )  # fmt: skip
        cluster.kubectl(
                "-n", "nodelab-system", "rollout", "status",
                "deployment/nodelab-operator", "--timeout=120s",
            )  # fmt: skip
        install_s = time.perf_counter() - started
        cluster.kubectl("create", "namespace", NAMESPACE)
        return _measure(cluster, fleet, install_s)


def _measure(cluster: harness.Cluster, fleet: int, install_s: float) -> list[Row]:
    api = cluster.api()
    say(f"row 6: the operator in its pod against kube-apiserver ({fleet} labs at once)")
    _create(api, "one")
    create_s = _until(lambda: _has_children(api, "one"), 60, "children of one")
    _until(lambda: _node_pods_ready(api, "one"), 120, "node pod of one Ready")
    ready_at = time.perf_counter()
    job = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/one-load-g1"
    _until(lambda: api.get(job) is not None, 60, "load Job of one")
    job_s = time.perf_counter() - ready_at

    for node in node_names(cluster.nodes):
        cluster.kubectl("cordon", node)
    labs = [f"fleet-{index:03d}" for index in range(fleet)]
    started = time.perf_counter()
    for name in labs:
        _create(api, name)
    created_s = time.perf_counter() - started
    fleet_s = _until(
        lambda: all(_has_children(api, name) for name in labs), 300, "children of every lab"
    )
    fleet_s += created_s
    say(f"row 6: {fleet} labs -> children in {fleet_s:.2f} s; install {install_s:.1f} s")
    judged = fleet == FULL_FLEET
    return [
        Row(
            "6a", f"real API: NodeLab create -> Deployment, Services, account: {create_s:.3f} s",
            "target 1 s", create_s / CREATE_TARGET_S, f"< {CREATE_TARGET_S:g} s",
            judge(create_s < CREATE_TARGET_S), data={"seconds": create_s},
        ),
        Row(
            "6b", f"real API: last node pod Ready -> load Job: {job_s:.3f} s",
            "target 1 s", job_s / JOB_TARGET_S, f"< {JOB_TARGET_S:g} s",
            judge(job_s < JOB_TARGET_S), data={"seconds": job_s},
        ),
        Row(
            "6c", f"real API: {fleet} NodeLabs at once -> children: {fleet_s:.2f} s",
            "target 30 s", fleet_s / FLEET_TARGET_S, f"< {FLEET_TARGET_S:g} s",
            judge(fleet_s < FLEET_TARGET_S) if judged else "info",
            note="" if judged else f"quick: {fleet} labs; 100 in the full run",
            data={"labs": fleet, "seconds": fleet_s, "installSeconds": install_s},
        ),
    ]  # fmt: skip
