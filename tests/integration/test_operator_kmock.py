"""The real kopf operator against kmock's emulated Kubernetes API; the test plays the kubelet."""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from nodelab.kube.settings import OperatorSettings

from loadgen import cli as loadgen_cli
from tests.support.emulated_api import (
    NODELABS,
    ApiServer,
    Emulator,
    eventually,
    running_operator,
)

PHASE_1 = Path(__file__).parents[2] / "manifests" / "phases" / "phase-1-overwhelm.yaml"
SETTINGS = OperatorSettings(reconcile_interval=0.3, report_grace_seconds=600)
DEPLOYMENTS, JOBS, SERVICES = "apps/v1/deployments", "batch/v1/jobs", "v1/services"
OURS = {NODELABS, "v1/events"}  # what is not a child: the lab itself and its Events

pytestmark = [
    pytest.mark.kmock(cls=ApiServer),
    pytest.mark.timeout(120),
    # kopf closes its watch streams while the emulator's server is shutting down.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def _phase_1() -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(PHASE_1.read_text(encoding="utf-8"))
    return copy.deepcopy(body)


def _command(job: dict[str, Any]) -> list[str]:
    command: list[str] = job["spec"]["template"]["spec"]["containers"][0]["command"]
    return command


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return container


async def _create_lab(emulator: Emulator, body: dict[str, Any] | None = None) -> dict[str, Any]:
    lab = body or _phase_1()
    await emulator.create("NodeLab", lab)
    return lab


async def test_create_deploys_then_loads(emulator: Emulator) -> None:
    async with running_operator(emulator, SETTINGS) as cluster:
        started = time.monotonic()
        await _create_lab(emulator)
        deployment = await eventually(
            lambda: emulator.get(DEPLOYMENTS, "scaling-lab-node"), "the node Deployment"
        )
        assert deployment["spec"]["replicas"] == 1
        assert _container(deployment)["command"][-6:] == [
            "--workers", "1", "--load-factor", "35", "--io-millis", "0",
        ]  # fmt: skip
        assert _container(deployment)["resources"]["limits"]["cpu"] == "500m"
        await eventually(
            lambda: (
                {"scaling-lab-node", "scaling-lab-node-headless"} <= set(emulator.names(SERVICES))
            ),
            "both Services",
        )
        assert emulator.get(SERVICES, "scaling-lab-node-headless")["spec"]["clusterIP"] == "None"  # type: ignore[index]
        assert emulator.get("v1/serviceaccounts", "scaling-lab-loadgen") is not None
        await eventually(lambda: emulator.lab_status().get("phase") == "Deploying", "Deploying")
        available = await eventually(
            lambda: (
                emulator.condition("Available").get("reason") == "RollingOut"
                and emulator.condition("Available")
            ),
            "Available=False explaining the rollout",
        )
        assert available["status"] == "False"
        assert "waiting for the rollout of generation 1" in available["message"]
        assert emulator.names(JOBS) == []  # no load before the rollout is ready

        await emulator.mark_deployment_ready()
        ready_at = time.monotonic()
        job = await eventually(lambda: emulator.get(JOBS, "scaling-lab-load-g1"), "the load Job")
        job_latency = time.monotonic() - ready_at
        plan, options = loadgen_cli.parse(_command(job)[2:])
        assert plan.targets == ("http://scaling-lab-node-headless.default.svc:8080",)
        assert (plan.generation, plan.concurrency, plan.requests) == (1, 5, 20)
        assert plan.expand_dns and options.report_to == "default/scaling-lab"
        await eventually(lambda: emulator.lab_status().get("phase") == "Ready", "Ready")
        # The Job controller creates the load pod (active), then the kubelet runs it (ready).
        await emulator.patch("Job", "scaling-lab-load-g1", {"status": {"active": 1, "ready": 1}})
        await eventually(lambda: emulator.lab_status().get("phase") == "Loading", "Loading")

        # The load Job reports (as loadgen's --report-to does), then exits.
        await emulator.patch("NodeLab", "scaling-lab", {"status": {"lastRun": _report(1)}})
        await emulator.finish_job("scaling-lab-load-g1")
        status = await eventually(
            lambda: emulator.lab_status().get("phase") == "Completed" and emulator.lab_status(),
            "Completed",
        )
        assert status["history"] == [{
            "generation": 1, "finishedAt": "2025-01-01T00:00:59Z", "replicas": 1, "workers": 1,
            "concurrency": 5, "p50Millis": 9000.0, "p99Millis": 14000.0, "rps": 0.4,
            "verdict": "Crashed",
        }]  # fmt: skip
        assert status["lastRun"]["generation"] == 1  # the operator never touches lastRun
        assert status["prediction"]["bottleneck"] == "cores"  # 1 worker on 0.5 CPU
        assert emulator.condition("SLOMet")["reason"] == "LatencyAboveSLO"
        assert emulator.condition("LoadComplete")["status"] == "True"

        # Steady state: count the API calls of the reconcile timer over a few ticks.
        before, tick_start = cluster.calls, time.monotonic()
        await asyncio.sleep(SETTINGS.reconcile_interval * 5)  # measuring a rate, not waiting
        per_second = (cluster.calls - before) / (time.monotonic() - tick_start)
        per_tick = per_second * SETTINGS.reconcile_interval
        print(
            f"\nNodeLab create -> Job: {ready_at - started:.2f}s to Deployment ready + "
            f"{job_latency:.2f}s to Job; steady state {per_tick:.1f} API calls per tick"
        )
        assert emulator.names(JOBS) == ["scaling-lab-load-g1"]
        # A tick reads the lab, its Deployment and its Jobs; its own writes wake no further step
        # (a load slows the ticks down, never up).
        assert per_tick < 8, f"{per_tick:.1f} API calls per tick: steps waking steps?"


async def test_change_workers_rolls_out_a_new_generation(emulator: Emulator) -> None:
    async with running_operator(emulator, SETTINGS):
        await _create_lab(emulator)
        await eventually(lambda: emulator.get(DEPLOYMENTS, "scaling-lab-node"), "the Deployment")
        await emulator.mark_deployment_ready()
        await eventually(lambda: emulator.get(JOBS, "scaling-lab-load-g1"), "the load Job of g1")

        # kubectl apply of phase 2 (workers 1 -> 2): the server bumps the generation to 2.
        await emulator.patch("NodeLab", "scaling-lab", {"spec": {"node": {"workers": 2}}})
        deployment = await eventually(
            lambda: (
                (d := emulator.get(DEPLOYMENTS, "scaling-lab-node"))
                and "2" in _container(d)["command"][-5:-4]
                and d
            ),
            "the Deployment with 2 workers",
        )
        assert _container(deployment)["resources"]["limits"]["cpu"] == "1"
        assert deployment["metadata"]["labels"]["lab.nodelab.dev/generation"] == "2"
        await emulator.mark_deployment_ready()
        job = await eventually(lambda: emulator.get(JOBS, "scaling-lab-load-g2"), "the Job of g2")
        assert loadgen_cli.parse(_command(job)[2:])[0].generation == 2
        # The still-running Job of generation 1 is superseded and deleted.
        await eventually(
            lambda: emulator.names(JOBS) == ["scaling-lab-load-g2"], "only the Job of g2 left"
        )
        assert emulator.lab_status()["observedGeneration"] == 2


async def test_restart_mid_run_creates_no_second_job(emulator: Emulator) -> None:
    async with running_operator(emulator, SETTINGS):
        await _create_lab(emulator)
        await eventually(lambda: emulator.get(DEPLOYMENTS, "scaling-lab-node"), "the Deployment")
        await emulator.mark_deployment_ready()
        await eventually(lambda: emulator.get(JOBS, "scaling-lab-load-g1"), "the load Job")
    # The operator is gone while the Job runs; a new one resumes.
    async with running_operator(emulator, SETTINGS) as cluster:
        await eventually(lambda: cluster.calls >= 12, "a few ticks of the new operator")
        assert emulator.names(JOBS) == ["scaling-lab-load-g1"]
        await emulator.patch("NodeLab", "scaling-lab", {"status": {"lastRun": _report(1)}})
        await emulator.finish_job("scaling-lab-load-g1")
        await eventually(lambda: emulator.lab_status().get("phase") == "Completed", "Completed")
        assert len(emulator.lab_status()["history"]) == 1
    creates = [
        r for r in emulator.server
        if r.action == kmock.action.CREATE and r.resource is not None
        and r.resource.plural == "jobs"
    ]  # fmt: skip
    assert len(creates) == 1


async def test_children_are_owned_and_collected(emulator: Emulator) -> None:
    async with running_operator(emulator, SETTINGS):
        await _create_lab(emulator)
        stored = await eventually(lambda: emulator.get(NODELABS, "scaling-lab"), "the NodeLab")
        await eventually(lambda: emulator.get(DEPLOYMENTS, "scaling-lab-node"), "the Deployment")
        await emulator.mark_deployment_ready()
        await eventually(lambda: emulator.get(JOBS, "scaling-lab-load-g1"), "the load Job")
        children = [
            (DEPLOYMENTS, "scaling-lab-node"),
            (SERVICES, "scaling-lab-node"),
            (SERVICES, "scaling-lab-node-headless"),
            ("v1/serviceaccounts", "scaling-lab-loadgen"),
            ("rbac.authorization.k8s.io/v1/roles", "scaling-lab-loadgen"),
            ("rbac.authorization.k8s.io/v1/rolebindings", "scaling-lab-loadgen"),
            (JOBS, "scaling-lab-load-g1"),
        ]
        for resource, name in children:
            child = emulator.get(resource, name)
            assert child is not None, f"{resource}/{name}"
            assert child["metadata"]["ownerReferences"] == [{
                "apiVersion": "lab.nodelab.dev/v1alpha1", "kind": "NodeLab",
                "name": "scaling-lab", "uid": stored["metadata"]["uid"],
                "controller": True, "blockOwnerDeletion": True,
            }], f"{resource}/{name}"  # fmt: skip
        await emulator.delete("NodeLab", "scaling-lab")
        await eventually(lambda: emulator.get(NODELABS, "scaling-lab") is None, "the lab gone")
    # The emulator has no garbage collector: play it, following the owner references.
    collected = await emulator.collect_garbage()
    assert len(collected) == len(children)
    for resource, name in children:
        assert emulator.get(resource, name) is None


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("workers", 0, "spec.node.workers: Invalid value: 0"),
        ("cpuPerWorker", "lots", "spec.node.cpuPerWorker: Invalid value: 'lots'"),
        # Valid for the CRD, refused by the operator: not its own image, none allowed.
        ("image", "registry.example/miner:1", "spec.node.image: Forbidden: 'registry.example/"),
    ],
)
async def test_invalid_spec_names_the_field(
    emulator: Emulator, field: str, value: Any, words: str
) -> None:
    lab = _phase_1()
    lab["spec"]["node"][field] = value
    async with running_operator(emulator, SETTINGS):
        await _create_lab(emulator, lab)
        condition = await eventually(
            lambda: (
                emulator.condition("SpecValid").get("status") == "False"
                and emulator.condition("SpecValid")
            ),
            "SpecValid=False",
        )
        assert condition["reason"] == "InvalidSpec"
        assert words in condition["message"]
        assert emulator.lab_status()["phase"] == "Failed"
        assert emulator.get(DEPLOYMENTS, "scaling-lab-node") is None


async def test_a_name_no_child_can_carry_is_refused_before_any_child(emulator: Emulator) -> None:
    # The CRD's rule refuses it at the API; a NodeLab that got past (the emulator has no CEL,
    # or an older CRD) is refused by the operator before it creates anything.
    lab = _phase_1()
    lab["metadata"]["name"] = "lab.v2"
    async with running_operator(emulator, SETTINGS):
        await _create_lab(emulator, lab)
        condition = await eventually(
            lambda: (
                emulator.condition("SpecValid", "lab.v2").get("status") == "False"
                and emulator.condition("SpecValid", "lab.v2")
            ),
            "SpecValid=False",
        )
        assert condition["reason"] == "InvalidSpec"
        refusal = "metadata.name: Invalid value: 'lab.v2': must be a DNS-1035 label"
        assert refusal in condition["message"]
        assert emulator.lab_status("lab.v2")["phase"] == "Failed"
        children = {(kind, name) for kind, name in emulator.live() if kind not in OURS}
        assert children == set(), "no child was created"


ROLES = "rbac.authorization.k8s.io/v1/roles"


def _foreign_deployment() -> dict[str, Any]:
    # Someone else's Deployment with the lab's child name and labels: labels prove nothing.
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "scaling-lab-node", "namespace": "default",
                     "labels": {"app.kubernetes.io/instance": "scaling-lab"}},
        "spec": {"replicas": 7, "selector": {"matchLabels": {"app": "theirs"}},
                 "template": {"metadata": {"labels": {"app": "theirs"}},
                              "spec": {"containers": [{"name": "app", "image": "theirs:1"}]}}},
    }  # fmt: skip


def _earlier_labs_role() -> dict[str, Any]:
    # The load Role of an earlier NodeLab of the same name (another uid), not yet collected.
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "scaling-lab-loadgen", "namespace": "default", "ownerReferences": [{
            "apiVersion": "lab.nodelab.dev/v1alpha1", "kind": "NodeLab", "name": "scaling-lab",
            "uid": "uid-of-an-earlier-lab", "controller": True, "blockOwnerDeletion": True}]},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("resource", "foreign", "named"),
    [
        (DEPLOYMENTS, _foreign_deployment, "Deployment scaling-lab-node"),
        (ROLES, _earlier_labs_role, "Role scaling-lab-loadgen"),
    ],
    ids=["unowned-deployment", "role-of-another-lab"],
)
async def test_an_object_in_the_way_is_left_alone_until_it_is_gone(
    emulator: Emulator, resource: str, foreign: Any, named: str
) -> None:
    async with running_operator(emulator, SETTINGS) as cluster:
        theirs = foreign()
        await asyncio.to_thread(cluster.create, theirs)
        before = copy.deepcopy(emulator.get(resource, theirs["metadata"]["name"]))
        await _create_lab(emulator)
        condition = await eventually(
            lambda: (
                emulator.condition("ChildrenApplied").get("reason") == "ChildConflict"
                and emulator.condition("ChildrenApplied")
            ),
            "ChildrenApplied=False/ChildConflict",
        )
        assert condition["status"] == "False"
        assert f"{named} exists and this NodeLab does not control it" in condition["message"]
        assert emulator.lab_status()["phase"] == "Failed"
        # A few ticks later: still not patched, not adopted, and nothing after it was created.
        calls = cluster.calls
        await eventually(lambda: cluster.calls >= calls + 6, "a few more ticks")
        assert emulator.get(resource, theirs["metadata"]["name"]) == before
        assert emulator.get(SERVICES, "scaling-lab-node-headless") is None
        assert emulator.condition("ChildrenApplied")["reason"] == "ChildConflict"

        # Its owner removes it: the operator creates its own and carries on.
        await asyncio.to_thread(
            cluster.delete, theirs["kind"], "default", theirs["metadata"]["name"]
        )
        await eventually(
            lambda: emulator.condition("ChildrenApplied").get("status") == "True",
            "ChildrenApplied=True",
        )
        ours = await eventually(
            lambda: emulator.get(resource, theirs["metadata"]["name"]), "the lab's own object"
        )
        lab_uid = emulator.get(NODELABS, "scaling-lab")["metadata"]["uid"]  # type: ignore[index]
        assert [ref["uid"] for ref in ours["metadata"]["ownerReferences"]] == [lab_uid]
        await eventually(
            lambda: emulator.lab_status().get("phase") == "Deploying", "Deploying again"
        )


async def test_a_deployment_that_stops_being_the_labs_is_not_reconciled(emulator: Emulator) -> None:
    async with running_operator(emulator, SETTINGS):
        await _create_lab(emulator)
        await eventually(lambda: emulator.get(DEPLOYMENTS, "scaling-lab-node"), "the Deployment")
        await eventually(lambda: emulator.lab_status().get("phase") == "Deploying", "Deploying")
        # Someone orphans it (or replaces it with their own): the timer must not go on with it.
        orphan = {"metadata": {"ownerReferences": None}}
        await emulator.patch("Deployment", "scaling-lab-node", orphan)
        await emulator.mark_deployment_ready()
        condition = await eventually(
            lambda: (
                emulator.condition("ChildrenApplied").get("reason") == "ChildConflict"
                and emulator.condition("ChildrenApplied")
            ),
            "ChildrenApplied=False/ChildConflict",
        )
        assert (
            "Deployment scaling-lab-node exists and this NodeLab does not control it"
            in (condition["message"])
        )
        assert emulator.lab_status()["phase"] == "Failed"
        assert "ownerReferences" not in emulator.get(DEPLOYMENTS, "scaling-lab-node")["metadata"]  # type: ignore[index]
        assert emulator.names(JOBS) == [], "no load against a fleet that is not the lab's"


def _forged_job(generation: int, status: dict[str, Any]) -> dict[str, Any]:
    labels = {
        "app.kubernetes.io/name": "nodelab-load", "app.kubernetes.io/instance": "scaling-lab",
        "app.kubernetes.io/component": "load", "lab.nodelab.dev/generation": str(generation),
    }  # fmt: skip
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"scaling-lab-load-g{generation}", "labels": labels},
        "spec": {"template": {"spec": {"containers": [{"name": "x", "image": "theirs:1"}]}}},
        "status": status,
    }


async def test_jobs_with_the_labs_labels_are_neither_counted_nor_deleted(
    emulator: Emulator,
) -> None:
    failed = {"failed": 1, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}  # fmt: skip
    async with running_operator(emulator, SETTINGS):
        # A "running" Job of an older generation (the operator deletes its own such Jobs) and
        # one with the name of this generation's load Job, failed, as if the run had failed.
        await emulator.create("Job", _forged_job(0, {"active": 1}))
        await emulator.create("Job", _forged_job(1, failed))
        await _create_lab(emulator)
        await eventually(lambda: emulator.get(DEPLOYMENTS, "scaling-lab-node"), "the Deployment")
        await emulator.mark_deployment_ready()
        condition = await eventually(
            lambda: (
                emulator.condition("ChildrenApplied").get("reason") == "ChildConflict"
                and emulator.condition("ChildrenApplied")
            ),
            "ChildrenApplied=False/ChildConflict",
        )
        assert (
            "Job scaling-lab-load-g1 exists and this NodeLab does not control it (it has no"
            in (condition["message"])
        )
        assert emulator.condition("LoadComplete").get("reason") != "BackoffLimitExceeded"
        assert emulator.names(JOBS) == ["scaling-lab-load-g0", "scaling-lab-load-g1"]

        await emulator.delete("Job", "scaling-lab-load-g1")
        job = await eventually(
            lambda: (
                (j := emulator.get(JOBS, "scaling-lab-load-g1"))
                and "ownerReferences" in (j["metadata"])
                and j
            ),
            "the lab's own load Job",
        )
        assert _command(job)[:2] == ["nodelab", "load"]
        await eventually(
            lambda: emulator.condition("ChildrenApplied").get("status") == "True",
            "ChildrenApplied=True",
        )
        assert "scaling-lab-load-g0" in emulator.names(JOBS), "not the operator's to delete"


# --- the watches: children's changes move the lab, not the timer ------------------------------

# A timer that never ticks within a test: whatever moves the lab here is a watch event.
NO_TIMER = OperatorSettings(reconcile_interval=300, report_grace_seconds=600)
NODE_LABELS = {
    "app.kubernetes.io/name": "nodelab-node", "app.kubernetes.io/instance": "scaling-lab",
    "app.kubernetes.io/component": "node",
}  # fmt: skip


def _requests(emulator: Emulator, action: Any, plural: str) -> list[Any]:
    return [
        r for r in emulator.server
        if r.action == action and r.resource is not None and r.resource.plural == plural
    ]  # fmt: skip


async def _deploying(emulator: Emulator) -> None:
    await _create_lab(emulator)
    await eventually(lambda: emulator.get(DEPLOYMENTS, "scaling-lab-node"), "the Deployment")
    await eventually(lambda: emulator.lab_status().get("phase") == "Deploying", "Deploying")


async def test_the_watches_move_a_lab_to_its_load_job_without_the_timer(
    emulator: Emulator,
) -> None:
    async with running_operator(emulator, NO_TIMER):
        await _deploying(emulator)
        await emulator.mark_deployment_ready()
        ready_at = time.monotonic()
        # Well inside the 300 s interval: only the Deployment's watch event can have done it.
        await eventually(
            lambda: emulator.get(JOBS, "scaling-lab-load-g1"), "the load Job", timeout=60
        )
        print(f"\nrollout ready -> load Job (watch): {time.monotonic() - ready_at:.3f} s")
        await eventually(lambda: emulator.lab_status().get("phase") == "Ready", "Ready")
        # The Job's own events: its pod runs (Loading); it reports, then exits (Completed).
        await emulator.patch("Job", "scaling-lab-load-g1", {"status": {"active": 1, "ready": 1}})
        await eventually(lambda: emulator.lab_status().get("phase") == "Loading", "Loading")
        await emulator.patch("NodeLab", "scaling-lab", {"status": {"lastRun": _report(1)}})
        await emulator.finish_job("scaling-lab-load-g1")
        await eventually(lambda: emulator.lab_status().get("phase") == "Completed", "Completed")
        assert emulator.condition("LoadComplete")["reason"] == "Succeeded"
    assert len(_requests(emulator, kmock.action.CREATE, "jobs")) == 1, "one load Job, once"
    # The watches ask the server for the lab's children only, not every pod in the cluster.
    selectors = {
        r.resource.plural: r.params.get("labelSelector", "")
        for r in _requests(emulator, kmock.action.WATCH, "pods")
        + _requests(emulator, kmock.action.WATCH, "deployments")
        + _requests(emulator, kmock.action.WATCH, "jobs")
    }
    assert set(selectors) == {"pods", "deployments", "jobs"}
    for plural, selector in selectors.items():
        assert "app.kubernetes.io/instance" in selector.split(","), (plural, selector)
    assert "app.kubernetes.io/component=node" in selectors["pods"].split(",")
    assert "app.kubernetes.io/component=load" in selectors["jobs"].split(",")
    assert "app.kubernetes.io/managed-by=nodelab-operator" in selectors["deployments"].split(",")


async def test_a_change_of_the_load_alone_starts_its_job_without_the_timer(
    emulator: Emulator,
) -> None:
    # Phase 3 of the tour changes only spec.load: the fleet stays as it is, already rolled out,
    # so no child's change would wake the step; the change handler's own step creates the Job.
    async with running_operator(emulator, NO_TIMER):
        await _deploying(emulator)
        await emulator.mark_deployment_ready()
        await eventually(lambda: emulator.get(JOBS, "scaling-lab-load-g1"), "the Job of g1")
        await emulator.patch("NodeLab", "scaling-lab", {"status": {"lastRun": _report(1)}})
        await emulator.finish_job("scaling-lab-load-g1")
        await eventually(lambda: emulator.lab_status().get("phase") == "Completed", "Completed")

        await emulator.patch("NodeLab", "scaling-lab", {"spec": {"load": {"concurrency": 20}}})
        job = await eventually(
            lambda: emulator.get(JOBS, "scaling-lab-load-g2"), "the Job of g2", timeout=60
        )
        assert loadgen_cli.parse(_command(job)[2:])[0].concurrency == 20
        await eventually(lambda: emulator.lab_status().get("phase") == "Ready", "Ready")
        assert emulator.lab_status()["observedGeneration"] == 2


async def test_a_node_pods_event_explains_a_stuck_rollout_without_the_timer(
    emulator: Emulator,
) -> None:
    pending = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "scaling-lab-node-abc12", "labels": dict(NODE_LABELS)},
        "spec": {"containers": [{"name": "node", "image": "nodelab:dev",
                                 "resources": {"requests": {"cpu": "500m"}}}]},
        "status": {"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient cpu."}]},
    }  # fmt: skip
    async with running_operator(emulator, NO_TIMER):
        await _deploying(emulator)
        await emulator.create("Pod", pending)
        condition = await eventually(
            lambda: (
                emulator.condition("Available").get("reason") == "Unschedulable"
                and emulator.condition("Available")
            ),
            "Available=False/Unschedulable",
            timeout=60,
        )
        assert "pod scaling-lab-node-abc12 asks for 500m CPU" in condition["message"]
        assert emulator.lab_status()["phase"] == "Deploying"
    # Watching a pod writes nothing on it (no finalizer, no annotations): list and watch suffice.
    assert _requests(emulator, kmock.action.UPDATE, "pods") == []


async def test_a_deleted_deployment_is_created_again_without_the_timer(emulator: Emulator) -> None:
    async with running_operator(emulator, NO_TIMER):
        await _deploying(emulator)
        first = emulator.get(DEPLOYMENTS, "scaling-lab-node")["metadata"]["uid"]  # type: ignore[index]
        await emulator.delete("Deployment", "scaling-lab-node")
        again = await eventually(
            lambda: (
                (d := emulator.get(DEPLOYMENTS, "scaling-lab-node"))
                and d["metadata"]["uid"] != first
                and d
            ),
            "the Deployment created again",
            timeout=60,
        )
        assert again["metadata"]["ownerReferences"][0]["name"] == "scaling-lab"


def _report(generation: int) -> dict[str, Any]:
    return {
        "schemaVersion": 1, "generation": generation, "finishedAt": "2025-01-01T00:00:59Z",
        "mode": "closed", "concurrency": 5, "requests": 20, "successes": 20, "rps": 0.4,
        "errors": {"total": 0, "byKind": {}}, "sloP99Millis": 5000, "verdict": "Crashed",
        "latencyMillis": {"p50": 9000.0, "p99": 14000.0},
        "calibration": {"requests": 3, "serviceMillis": 2700.0, "latencyMillis": 2710.0},
        "breakingConcurrency": None,
    }  # fmt: skip
