"""The cluster tier: one real control plane and test kubelet per session, NodeLab installed.

Skips with the reason where the control plane is not built (no Go) or pod network namespaces
cannot be made (not root). ``make test`` builds the control plane first (``make cluster-bin``).
"""

from __future__ import annotations

import contextlib
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
    with harness.running_cluster(workdir, nodes=NODES, cpu=NODE_CPU) as running:
        install(running)
        yield running


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
