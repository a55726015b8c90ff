"""Phases 5 and 6 through the operator on a real control plane: the test kubelet runs the real
node processes and the real load Job, so the numbers here are measured, not played.

Phase 5 (``phase-5c-defended.yaml``): the fault token Secret is mounted into the node pods and
the load pod, the load Job's trigger opens the incident window on every node with it, and the
storm run reports its timeline and figures. Phase 6 (``phase-6b-least-outstanding.yaml``): the
slow pool's Deployment beside the fast one, both behind the one headless Service, and
least-outstanding sends the slow pod a smaller share than each fast pod. `kubectl get nodelabs
-o wide` shows the phase 5 and 6 columns. Only shapes are asserted, never speed.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import eventually
from tests.cluster.test_phases import completed
from tests.support.cluster.harness import Cluster

PHASES = Path(__file__).resolve().parents[2] / "manifests" / "phases"
STORM, BALANCING = "storm-lab", "balancing-lab"
RUN_TIMEOUT_S = 240.0


def _run(cluster: Cluster, namespace: str, phase_file: str, lab: str) -> dict[str, Any]:
    cluster.kubectl("apply", "-n", namespace, "-f", str(PHASES / phase_file))
    generation = int(cluster.get("nodelab", "-n", namespace, lab)["metadata"]["generation"])
    try:
        done: dict[str, Any] = eventually(
            lambda: completed(cluster, namespace, lab, generation),
            timeout=RUN_TIMEOUT_S,
            what=f"{phase_file} Completed",
            poll=1.0,
        )
    except pytest.fail.Exception:
        print(_diagnosis(cluster, namespace, lab))
        raise
    return done


def _diagnosis(cluster: Cluster, namespace: str, lab: str) -> str:
    """What a run that did not complete left behind: the NodeLab's status and conditions, the
    namespace's pods, Jobs, Secrets and Events, and the logs of the load pod and a node pod."""

    def kubectl(*argv: str) -> str:
        result = cluster.kubectl(*argv, check=False)
        return result.stdout + result.stderr

    status = (cluster.get("nodelab", "-n", namespace, lab).get("status")) or {}
    parts = [
        f"--- NodeLab {lab} status (phase {status.get('phase')}, observedGeneration "
        f"{status.get('observedGeneration')})",
        json.dumps(status.get("conditions"), indent=1),
        "--- pods, jobs, secrets",
        kubectl("get", "pods,jobs,secrets", "-n", namespace, "-o", "wide"),
        "--- events",
        kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp"),
    ]
    pods = cluster.get("pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={lab}")
    names = [p["metadata"]["name"] for p in pods["items"]]
    load = [n for n in names if "-load-" in n]
    node = [n for n in names if "-node-" in n][:1]
    for name in load + node:
        parts += [f"--- logs of {name}", cluster.pod_log(namespace, name) or "(none)"]
    return "\n".join(parts)


def _wide_row(cluster: Cluster, namespace: str, lab: str) -> dict[str, str]:
    table = cluster.kubectl("get", "nodelab", "-n", namespace, lab, "-o", "wide").stdout
    header, row = table.splitlines()[:2]
    # Columns are separated by two spaces or more; an empty cell is spaces only.
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    cells = {}
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(row)
        cells[header[start:end].strip()] = row[start:end].strip()
    print(table)
    return cells


@pytest.mark.timeout(2 * RUN_TIMEOUT_S + 180)
def test_phases_five_and_six_run_through_the_operator(cluster: Cluster, namespace: str) -> None:
    # --- phase 5: the storm, with the token the operator made -----------------------------
    lab = _run(cluster, namespace, "phase-5c-defended.yaml", STORM)
    secret = cluster.get("secret", "-n", namespace, f"{STORM}-fault-token")
    (owner,) = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("NodeLab", STORM, True)
    assert len(base64.b64decode(secret["data"]["token"])) >= 32
    run = lab["status"]["lastRun"]
    # The trigger reached the nodes (a refused /fault fails the run, and the Job with it).
    assert run["trigger"]["mode"] == "slow", run.get("trigger")
    storm = run["storm"]
    # An open breaker refuses requests without an attempt, so a defended run may send fewer
    # attempts than it was offered; the budget keeps retries to a tenth of first attempts.
    assert storm["offered"] > 0 and 0 < storm["attempts"] <= 1.5 * storm["offered"], storm
    assert 0 < storm["amplification"] <= 1.5, storm
    assert storm["verdict"] in {"Recovered", "DidNotRecover"}
    points = run["timeline"]["points"]
    assert len(points) >= 10, "a point per second or two of the 20 s run"
    assert len(run.get("perNode") or []) == 2
    wide = _wide_row(cluster, namespace, STORM)
    assert wide["AMPLIFICATION"] != "", wide
    assert wide["BALANCING"] == "round-robin", wide
    narrow = cluster.kubectl("get", "nodelab", "-n", namespace, STORM).stdout.splitlines()[0]
    assert "AMPLIFICATION" not in narrow, "priority 1: only with -o wide"
    print(
        f"\nphase 5c: amplification {storm['amplification']}, in the trigger "
        f"{storm.get('triggerAmplification')}, recovery {storm.get('recoverySeconds')} s, "
        f"{storm['verdict']}"
    )

    # --- phase 6: fast and slow pods behind one Service -----------------------------------
    lab = _run(cluster, namespace, "phase-6b-least-outstanding.yaml", BALANCING)
    deployments = cluster.get(
        "deployments", "-n", namespace, "-l", f"app.kubernetes.io/instance={BALANCING}"
    )
    replicas = {d["metadata"]["name"]: d["spec"]["replicas"] for d in deployments["items"]}
    assert replicas == {f"{BALANCING}-node": 2, f"{BALANCING}-node-slow": 1}
    rows = lab["status"]["lastRun"]["perNode"]
    assert len(rows) == 3, rows
    slow = [r for r in rows if r["node"].startswith(f"{BALANCING}-node-slow-")]
    fast = [r for r in rows if r not in slow]
    assert len(slow) == 1 and len(fast) == 2, rows
    # What phase 6 teaches, measured: least-outstanding sends the slow pod less.
    assert all(slow[0]["share"] < row["share"] for row in fast), rows
    assert _wide_row(cluster, namespace, BALANCING)["BALANCING"] == "least-outstanding"
    print(f"phase 6b shares: {[(r['node'], r['share']) for r in rows]}")
