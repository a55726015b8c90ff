"""Phases 1-4 applied in turn to one NodeLab on a real control plane, in a namespace that
enforces Pod Security "restricted": each generation rolls out, runs its load Job and ends
Completed with measured latencies, and `kubectl get nodelabs` shows every column.

The work per request is scaled down (the files' fib(35) is ~2.7 s of CPU; every pod of this
cluster shares this machine's cores), so the figures are not the workshop's: this test proves
the path, the tour and the bench measure the numbers.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import eventually
from tests.support.cluster.harness import Cluster
from tests.support.phases import PHASES

LAB = "scaling-lab"
LOAD_FACTOR = 20  # fib(20): about a millisecond of CPU per request
PHASE_TIMEOUT_S = 240.0


def scaled(path: Path) -> dict[str, Any]:
    """A phase file with the per-request work scaled down; everything else as shipped."""
    document = copy.deepcopy(yaml.safe_load(path.read_text()))
    document["spec"]["node"]["work"]["loadFactor"] = LOAD_FACTOR
    return document


def completed(
    cluster: Cluster, namespace: str, name: str, generation: int
) -> dict[str, Any] | None:
    """The NodeLab once its ``generation`` is Completed; fails the test if it Failed."""
    lab = cluster.get("nodelab", "-n", namespace, name)
    status = lab.get("status") or {}
    if status.get("observedGeneration") != generation:
        return None
    if status.get("phase") == "Failed":
        pytest.fail(f"generation {generation} Failed: {status.get('conditions')}")
    return lab if status.get("phase") == "Completed" else None


@pytest.mark.timeout(4 * PHASE_TIMEOUT_S + 120)
def test_phases_one_to_four_complete_with_measured_latencies(
    cluster: Cluster, namespace: str
) -> None:
    for number, path in enumerate(PHASES, start=1):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(scaled(path)))
        generation = cluster.get("nodelab", "-n", namespace, LAB)["metadata"]["generation"]
        assert generation == number
        lab = eventually(
            lambda g=generation: completed(cluster, namespace, LAB, g),
            timeout=PHASE_TIMEOUT_S,
            what=f"{path.name} Completed",
            poll=1.0,
        )
        run = lab["status"]["lastRun"]
        assert run["generation"] == generation
        assert run["successes"] > 0 and run["latencyMillis"]["p99"] > 0
        wanted = yaml.safe_load(path.read_text())["spec"]
        assert len(run.get("perNode") or []) == wanted["node"]["replicas"], run.get("perNode")
        jobs = cluster.get("jobs", "-n", namespace, "-l", f"app.kubernetes.io/instance={LAB}")
        assert [j["metadata"]["name"] for j in jobs["items"]].count(
            f"{LAB}-load-g{generation}"
        ) == 1

    # `kubectl wait` on the documented condition returns at once for a finished lab.
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=LoadComplete", "--timeout=30s", f"nodelab/{LAB}"
    )
    table = cluster.kubectl("get", "nodelabs", "-n", namespace).stdout.splitlines()
    header, row = table[0].split(), table[1].split()
    columns = "NAME REPLICAS WORKERS CONCURRENCY P50 P99 RPS VERDICT PHASE AGE"
    assert header == columns.split(), header
    assert len(row) == len(header), f"a printer column is empty: {table}"
    history = cluster.get("nodelab", "-n", namespace, LAB)["status"]["history"]
    assert [row["generation"] for row in history] == [1, 2, 3, 4]
    assert [(r["replicas"], r["workers"]) for r in history] == [(1, 1), (1, 10), (1, 10), (3, 10)]
    print("\n".join(table))
