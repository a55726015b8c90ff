"""The builders give the expected objects for every phase file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kopf
import pytest
from nodelab.kube import builders, cluster_api
from nodelab.kube.settings import OperatorSettings, SettingsError
from nodelab.model import names, quantity, spec

from loadgen import cli as loadgen_cli

PHASES = sorted((Path(__file__).parents[2] / "manifests" / "phases").glob("*.yaml"))
SETTINGS = OperatorSettings()


@pytest.fixture(params=PHASES, ids=[p.stem for p in PHASES])
def lab(request: pytest.FixtureRequest) -> spec.NodeLab:
    return spec.load_phase_file(request.param)


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _assert_restricted(obj: dict[str, Any]) -> None:
    pod = obj["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = _container(obj)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 10001
    assert security["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in _container(obj)["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    resources = _container(obj)["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}


def test_deployment_follows_the_spec(lab: spec.NodeLab) -> None:
    deployment = builders.build_deployment(lab, SETTINGS)
    node = lab.spec.node
    assert deployment["metadata"]["name"] == "scaling-lab-node"
    assert deployment["metadata"]["namespace"] == "default"
    assert deployment["metadata"]["labels"][names.GENERATION_LABEL] == str(lab.generation)
    assert deployment["spec"]["replicas"] == node.replicas
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "nodelab-node",
        "app.kubernetes.io/instance": "scaling-lab",
    }
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    container = _container(deployment)
    assert container["image"] == "nodelab:dev"
    assert container["command"] == [
        "nodelab",
        "node",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--workers",
        str(node.workers),
        "--load-factor",
        str(node.load_factor),
        "--io-millis",
        str(node.io_millis),
    ]
    cpu = quantity.cpu_millicores(container["resources"]["limits"]["cpu"])
    assert cpu == node.workers * quantity.cpu_millicores(node.cpu_per_worker)
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert container["env"] == [
        {"name": "NODELAB_NODE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    ]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
        assert container[probe]["timeoutSeconds"] >= 3
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    _assert_restricted(deployment)


def test_vertical_scaling_means_a_bigger_pod() -> None:
    one = spec.load_phase_file(PHASES[1])  # phase-1: one worker
    ten = spec.load_phase_file(PHASES[2])  # phase-2: ten workers
    assert one.spec.node.workers == 1 and ten.spec.node.workers == 10
    cpu = [
        _container(builders.build_deployment(lab, SETTINGS))["resources"]["limits"]["cpu"]
        for lab in (one, ten)
    ]
    assert cpu == ["500m", "5"]


def test_services(lab: spec.NodeLab) -> None:
    service = builders.build_service(lab, SETTINGS)
    headless = builders.build_headless_service(lab, SETTINGS)
    assert service["metadata"]["name"] == "scaling-lab-node"
    assert headless["metadata"]["name"] == "scaling-lab-node-headless"
    assert "clusterIP" not in service["spec"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is False
    for svc in (service, headless):
        assert svc["spec"]["selector"] == names.node_selector("scaling-lab")
        assert svc["spec"]["ports"][0]["port"] == 8080


def test_load_job(lab: spec.NodeLab) -> None:
    job = builders.build_load_job(lab, SETTINGS)
    assert job["metadata"]["name"] == f"scaling-lab-load-g{lab.generation}"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == SETTINGS.load_deadline_seconds
    assert "ttlSecondsAfterFinished" not in job["spec"]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "scaling-lab-loadgen"
    command = _container(job)["command"]
    assert command[:2] == ["nodelab", "load"]
    argv = command[2:]
    plan, options = loadgen_cli.parse(argv)
    assert plan.targets == ("http://scaling-lab-node-headless.default.svc:8080",)
    assert plan.expand_dns is True
    assert plan.fresh_connections is True  # spreads requests over a pod's uvicorn workers
    assert plan.generation == lab.generation
    assert plan.calibrate == 5  # CALIBRATION_REQUESTS, the median of five
    assert plan.concurrency == lab.spec.load.concurrency
    assert plan.requests == lab.spec.load.requests
    assert plan.sweep == (lab.spec.load.sweep or None)
    assert plan.slo_p99_ms == lab.spec.slo.p99_millis
    assert options.report_to == "default/scaling-lab"
    assert options.quiet is True
    assert options.json_path == "-"
    _assert_restricted(job)


def test_challenge_job_sweeps() -> None:
    challenge = spec.load_phase_file(PHASES[0])
    argv = builders.build_load_argv(challenge, SETTINGS)
    assert argv[argv.index("--sweep") + 1] == "2,5,10,15,20,30"


def test_loadgen_rbac_is_least_privilege(lab: spec.NodeLab) -> None:
    account = builders.build_loadgen_service_account(lab, SETTINGS)
    role = builders.build_loadgen_role(lab, SETTINGS)
    binding = builders.build_loadgen_role_binding(lab, SETTINGS)
    assert account["metadata"]["name"] == role["metadata"]["name"] == "scaling-lab-loadgen"
    assert role["rules"] == [
        {
            "apiGroups": ["lab.nodelab.dev"],
            "resources": ["nodelabs"],
            "resourceNames": ["scaling-lab"],
            "verbs": ["get"],
        },
        {
            "apiGroups": ["lab.nodelab.dev"],
            "resources": ["nodelabs/status"],
            "resourceNames": ["scaling-lab"],
            "verbs": ["get", "patch"],
        },
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "scaling-lab-loadgen",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "scaling-lab-loadgen", "namespace": "default"}
    ]


def test_children_order_and_names(lab: spec.NodeLab) -> None:
    kinds = [(c["kind"], c["metadata"]["name"]) for c in builders.build_children(lab, SETTINGS)]
    assert kinds == [
        ("ServiceAccount", "scaling-lab-loadgen"),
        ("Role", "scaling-lab-loadgen"),
        ("RoleBinding", "scaling-lab-loadgen"),
        ("Deployment", "scaling-lab-node"),
        ("Service", "scaling-lab-node"),
        ("Service", "scaling-lab-node-headless"),
    ]


def test_adopted_children_are_recognised_as_the_labs_own(lab: spec.NodeLab) -> None:
    # Cluster.apply patches an existing object only if its controller's uid is the one the
    # desired object names: after kopf.adopt that is the lab, for every child and the Job.
    owner = {
        "apiVersion": "lab.nodelab.dev/v1alpha1",
        "kind": "NodeLab",
        "metadata": {"name": lab.name, "namespace": lab.namespace, "uid": "lab-uid"},
    }
    children = [*builders.build_children(lab, SETTINGS), builders.build_load_job(lab, SETTINGS)]
    kopf.adopt(children, owner=owner)
    assert {cluster_api.controller_uid(child) for child in children} == {"lab-uid"}
    someone_elses = {"metadata": {"name": "x", "ownerReferences": [{"uid": "lab-uid"}]}}
    assert cluster_api.controller_uid(someone_elses) is None, "an owner that is not the controller"
    conflict = cluster_api.ChildConflict(someone_elses, "Role")
    assert (
        str(conflict) == "Role x exists and this NodeLab does not control it (it has no controller)"
    )


def test_node_image_override() -> None:
    lab = spec.load_phase_file(PHASES[1])
    custom = spec.NodeLab(
        lab.name,
        "lab-ns",
        7,
        spec.NodeLabSpec(
            node=spec.NodeSpec(**{**lab.spec.node.__dict__, "image": "example/node:1"}),
            load=lab.spec.load,
            slo=lab.spec.slo,
        ),
    )
    deployment = builders.build_deployment(custom, SETTINGS)
    assert _container(deployment)["image"] == "example/node:1"
    assert deployment["metadata"]["namespace"] == "lab-ns"
    job = builders.build_load_job(custom, SETTINGS)
    assert job["metadata"]["name"] == "scaling-lab-load-g7"
    assert _container(job)["image"] == "nodelab:dev"  # the load generator is the operator's


def _with_image(image: str | None) -> spec.NodeLab:
    lab = spec.load_phase_file(PHASES[1])
    node = spec.NodeSpec(**{**lab.spec.node.__dict__, "image": image})
    body = spec.NodeLabSpec(node=node, load=lab.spec.load, slo=lab.spec.slo)
    return spec.NodeLab(lab.name, lab.namespace, lab.generation, body)


def test_by_default_the_operator_runs_only_its_own_image() -> None:
    assert builders.policy_errors(_with_image(None), SETTINGS) == []
    assert builders.policy_errors(_with_image(SETTINGS.image), SETTINGS) == []
    (error,) = builders.policy_errors(_with_image("registry.example/miner:1"), SETTINGS)
    assert error.field == "spec.node.image"
    assert error.message.startswith("Forbidden: 'registry.example/miner:1'")
    assert "nodelab:dev" in error.message and "NODELAB_ALLOWED_IMAGES" in error.message


def test_allowed_images_are_exact_references() -> None:
    settings = OperatorSettings(allowed_images=("registry.example/node:2",))
    assert builders.policy_errors(_with_image("registry.example/node:2"), settings) == []
    assert builders.policy_errors(_with_image(settings.image), settings) == []
    # No prefix or tag matching: a look-alike reference is another image.
    for other in ("registry.example/node:3", "registry.example/node", "registry.example/node:2x"):
        assert [e.field for e in builders.policy_errors(_with_image(other), settings)] == [
            "spec.node.image"
        ], other


def test_settings_from_env() -> None:
    settings = OperatorSettings.from_env(
        {
            "NODELAB_IMAGE": "x:1",
            "NODELAB_RECONCILE_INTERVAL": "0.5",
            "NODELAB_WATCH_NAMESPACES": "a, b",
        }
    )
    assert (settings.image, settings.reconcile_interval, settings.namespaces) == (
        "x:1",
        0.5,
        ("a", "b"),
    )
    assert OperatorSettings.from_env({}) == OperatorSettings()
    allowed = OperatorSettings.from_env({"NODELAB_ALLOWED_IMAGES": " a/b:1, ,c@sha256:0 "})
    assert allowed.allowed_images == ("a/b:1", "c@sha256:0")
    assert OperatorSettings().allowed_images == (), "none by default: only the operator's image"
    with pytest.raises(SettingsError, match="NODELAB_RECONCILE_INTERVAL"):
        OperatorSettings.from_env({"NODELAB_RECONCILE_INTERVAL": "soon"})
