"""The cluster tier: one real control plane and test kubelet per session, NodeLab installed.

Skips with the reason where the control plane is not built (no Go) or pod network namespaces
cannot be made (not root). ``make test`` builds the control plane first (``make cluster-bin``).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import harness

ROOT = Path(__file__).resolve().parents[2]
# Nodes sized like kind workers on a 6-CPU laptop: docs/kind.md's minimum for phases 2-4, whose
# pods request 10 workers x 500m = 5 CPUs.
NODES = 3
NODE_CPU = "6"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder carries the ``cluster`` marker."""
    for item in items:
        if "tests/cluster/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Cluster]:
    """The session's cluster with `kubectl apply -k manifests/` applied and the operator up."""
    reason = harness.unavailable_reason()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("cluster")
    # A SIGTERM (a CI time limit) unwinds like Ctrl-C, so the cluster is still stopped and reaped.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    with harness.running_cluster(workdir, nodes=NODES, cpu=NODE_CPU) as running:
        install(running)
        yield running
    signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture
def namespace(cluster: harness.Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace enforcing Pod Security "restricted" for one test, deleted (and its pods
    gone, so their CPU is free for the next test's pods) when the test ends."""
    name = request.node.name.split("[")[0].replace("_", "-")[:40].strip("-").lower()
    name = name.removeprefix("test-")
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl(
        "label", "namespace", name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )  # fmt: skip
    try:
        yield name
    finally:
        _delete_namespace(cluster, name)


def _delete_namespace(cluster: harness.Cluster, name: str) -> None:
    """Delete a test's namespace and wait until it is gone. If the operator cannot remove its
    finalizer from a NodeLab there (a test broke it), remove it here so the next test starts
    clean; the test itself has already failed or passed on what it checked."""
    try:
        cluster.kubectl("delete", "namespace", name, "--wait=true", "--timeout=90s", timeout=100)
        return
    except (harness.KubectlError, subprocess.TimeoutExpired):
        pass
    labs = cluster.get("nodelabs", "-n", name)["items"]
    for lab in labs:
        cluster.kubectl(
            "patch", "nodelab", "-n", name, lab["metadata"]["name"], "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}',
        )  # fmt: skip
    cluster.kubectl("wait", "--for=delete", f"namespace/{name}", "--timeout=90s", timeout=100)


def install(cluster: harness.Cluster) -> None:
    """Apply the shipped manifests and wait for the CRD and the operator, as a user would."""
    cluster.kubectl("apply", "-k", str(ROOT / "manifests"))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/nodelabs.lab.nodelab.dev"
    )
    cluster.kubectl(
        "-n", "nodelab-system", "rollout", "status", "deployment/nodelab-operator",
        "--timeout=120s",
    )  # fmt: skip


def eventually(check, *, timeout: float, what: str, poll: float = 0.5):  # type: ignore[no-untyped-def]
    """Call ``check`` until it returns a truthy value; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        with contextlib.suppress(harness.KubectlError):
            last = check()
            if last:
                return last
        time.sleep(poll)  # poll interval of a condition wait
    pytest.fail(f"{what}: not true after {timeout:.0f}s (last: {last!r})")
