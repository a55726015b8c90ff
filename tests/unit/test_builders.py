"""The builders give the expected objects for every phase file, and phases 5 and 6's children:
the fault token Secret and its mounts, the node flags of protection and the slow pool, the two
node Deployments behind the same Services, the load Job's storm and balancing flags."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import kopf
import pytest
from nodelab.kube import builders, cluster_api
from nodelab.kube.settings import OperatorSettings, SettingsError
from nodelab.model import names, quantity, spec

from loadgen import cli as loadgen_cli
from node_service import settings as node_settings
from tests.support.phase56_labs import balancing_lab, storm_lab

PHASES_DIR = Path(__file__).parents[2] / "manifests" / "phases"
PHASES = sorted(PHASES_DIR.glob("*.yaml"))
# Phases 1-4 and the challenge: the same NodeLab, without the blocks of phases 5 and 6.
SCALING = [p for p in PHASES if spec.load_phase_file(p).name == "scaling-lab"]
SETTINGS = OperatorSettings()
TOKEN = "t0ken-" * 7


@pytest.fixture(params=PHASES, ids=[p.stem for p in PHASES])
def lab(request: pytest.FixtureRequest) -> spec.NodeLab:
    return spec.load_phase_file(request.param)


@pytest.fixture(params=SCALING, ids=[p.stem for p in SCALING])
def scaling(request: pytest.FixtureRequest) -> spec.NodeLab:
    return spec.load_phase_file(request.param)


def _storm() -> spec.NodeLab:
    return spec.parse_nodelab(storm_lab())


def _balancing() -> spec.NodeLab:
    return spec.parse_nodelab(balancing_lab())


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


def test_deployment_follows_the_spec(scaling: spec.NodeLab) -> None:
    lab = scaling
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
    one = spec.load_phase_file(PHASES_DIR / "phase-1-overwhelm.yaml")  # one worker
    ten = spec.load_phase_file(PHASES_DIR / "phase-2-vertical.yaml")  # ten workers
    assert one.spec.node.workers == 1 and ten.spec.node.workers == 10
    cpu = [
        _container(builders.build_deployment(lab, SETTINGS))["resources"]["limits"]["cpu"]
        for lab in (one, ten)
    ]
    assert cpu == ["500m", "5"]


def test_services(lab: spec.NodeLab) -> None:
    service = builders.build_service(lab, SETTINGS)
    headless = builders.build_headless_service(lab, SETTINGS)
    assert service["metadata"]["name"] == f"{lab.name}-node"
    assert headless["metadata"]["name"] == f"{lab.name}-node-headless"
    assert "clusterIP" not in service["spec"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is False
    for svc in (service, headless):
        # Every node pod of the lab, fast or slow: not the Deployment's selector (name).
        assert svc["spec"]["selector"] == {
            "app.kubernetes.io/instance": lab.name,
            "app.kubernetes.io/component": "node",
        }
        assert svc["spec"]["ports"][0]["port"] == 8080
    pods = builders.build_deployment(lab, SETTINGS)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pods.items()


def test_load_job(scaling: spec.NodeLab) -> None:
    lab = scaling
    job = builders.build_load_job(lab, SETTINGS)
    assert job["metadata"]["name"] == f"scaling-lab-load-g{lab.generation}"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] >= SETTINGS.load_deadline_seconds
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
    challenge = spec.load_phase_file(PHASES_DIR / "challenge-sweep.yaml")
    argv = builders.build_load_argv(challenge, SETTINGS)
    assert argv[argv.index("--sweep") + 1] == "2,5,10,15,20,30"


def test_loadgen_rbac_is_least_privilege(scaling: spec.NodeLab) -> None:
    lab = scaling
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


def test_children_order_and_names(scaling: spec.NodeLab) -> None:
    kinds = [(c["kind"], c["metadata"]["name"]) for c in builders.build_children(scaling, SETTINGS)]
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
    children = [
        *builders.build_children(lab, SETTINGS, fault_token=TOKEN),
        builders.build_load_job(lab, SETTINGS),
    ]
    kopf.adopt(children, owner=owner)
    assert {cluster_api.controller_uid(child) for child in children} == {"lab-uid"}
    someone_elses = {"metadata": {"name": "x", "ownerReferences": [{"uid": "lab-uid"}]}}
    assert cluster_api.controller_uid(someone_elses) is None, "an owner that is not the controller"
    conflict = cluster_api.ChildConflict(someone_elses, "Role")
    assert (
        str(conflict) == "Role x exists and this NodeLab does not control it (it has no controller)"
    )


def test_node_image_override() -> None:
    lab = spec.load_phase_file(PHASES_DIR / "phase-1-overwhelm.yaml")
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
    lab = spec.load_phase_file(PHASES_DIR / "phase-1-overwhelm.yaml")
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


# --- phase 5: the fault token, protection, the storm run ------------------------------------


def _volume(obj: dict[str, Any], name: str) -> dict[str, Any] | None:
    volumes = obj["spec"]["template"]["spec"]["volumes"]
    return next((v for v in volumes if v["name"] == name), None)


def _node_settings(deployment: dict[str, Any]) -> node_settings.NodeSettings:
    command = _container(deployment)["command"]
    assert command[:2] == ["nodelab", "node"]
    # The node's own parser, as the pod runs it (the token file must exist to parse: skipped).
    argv = command[2:]
    if "--fault-token-file" in argv:
        at = argv.index("--fault-token-file")
        argv = argv[:at] + argv[at + 2 :]
    return node_settings.parse_settings(argv, {})


def test_a_trigger_gets_a_fault_token_secret_owned_and_labelled() -> None:
    lab = _storm()
    secret = builders.build_fault_token_secret(lab, TOKEN)
    assert (
        secret["metadata"]["name"]
        == names.fault_token_secret("storm-lab")
        == ("storm-lab-fault-token")
    )
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["token"]).decode() == TOKEN
    assert secret["metadata"]["labels"][names.INSTANCE_LABEL] == "storm-lab"
    assert names.GENERATION_LABEL not in secret["metadata"]["labels"], "one token per lab"
    assert builders.fault_token_of(secret) == TOKEN, "read back as it was written"
    kopf.adopt(secret, owner={
        "apiVersion": "lab.nodelab.dev/v1alpha1", "kind": "NodeLab",
        "metadata": {"name": "storm-lab", "namespace": "default", "uid": "lab-uid"},
    })  # fmt: skip
    assert cluster_api.controller_uid(secret) == "lab-uid"


@pytest.mark.parametrize(
    "secret",
    [None, {}, {"data": {}}, {"data": {"token": "not base64!"}}, {"data": {"token": ""}}],
)
def test_an_unreadable_secret_holds_no_token(secret: dict[str, Any] | None) -> None:
    assert builders.fault_token_of(secret) is None


def test_the_secret_comes_before_the_pods_that_mount_it() -> None:
    kinds = [
        (c["kind"], c["metadata"]["name"])
        for c in builders.build_children(_storm(), SETTINGS, fault_token=TOKEN)
    ]
    assert kinds == [
        ("ServiceAccount", "storm-lab-loadgen"),
        ("Role", "storm-lab-loadgen"),
        ("RoleBinding", "storm-lab-loadgen"),
        ("Secret", "storm-lab-fault-token"),
        ("Deployment", "storm-lab-node"),
        ("Service", "storm-lab-node"),
        ("Service", "storm-lab-node-headless"),
    ]
    with pytest.raises(ValueError, match="fault token"):
        builders.build_children(_storm(), SETTINGS)


def test_without_a_trigger_there_is_no_secret_and_no_mount(scaling: spec.NodeLab) -> None:
    children = builders.build_children(scaling, SETTINGS, fault_token=TOKEN)
    assert "Secret" not in {c["kind"] for c in children}
    for obj in (
        builders.build_deployment(scaling, SETTINGS),
        builders.build_load_job(scaling, SETTINGS),
    ):
        assert _volume(obj, "fault-token") is None
        assert "--fault-token-file" not in _container(obj)["command"]


def test_the_token_is_mounted_read_only_into_node_pods_and_the_load_pod() -> None:
    lab = _storm()
    mount = {"name": "fault-token", "mountPath": "/var/run/nodelab/fault", "readOnly": True}
    for obj in (builders.build_deployment(lab, SETTINGS), builders.build_load_job(lab, SETTINGS)):
        assert _volume(obj, "fault-token") == {
            "name": "fault-token",
            "secret": {
                "secretName": "storm-lab-fault-token",
                "items": [{"key": "token", "path": "token"}],
                "defaultMode": 0o440,
            },
        }
        container = _container(obj)
        assert mount in container["volumeMounts"]
        command = container["command"]
        assert command[command.index("--fault-token-file") + 1] == builders.FAULT_TOKEN_FILE
        assert builders.FAULT_TOKEN_FILE == "/var/run/nodelab/fault/token"
        _assert_restricted(obj)


def test_protection_becomes_the_nodes_flags() -> None:
    parsed = _node_settings(builders.build_deployment(_storm(), SETTINGS))
    protection = parsed.protection
    assert (protection.max_queue, protection.retry_after_seconds) == (4, 1)
    assert (protection.rate_limit, protection.rate_burst) == (40.0, 10)
    assert (parsed.workers, parsed.load_factor, parsed.io_millis) == (2, 20, 50)
    assert (parsed.service_factor, parsed.extra_millis) == (1.0, 0), "no slow pool"


def test_the_storm_jobs_plan_is_the_specs(tmp_path: Path) -> None:
    lab = _storm()
    job = builders.build_load_job(lab, SETTINGS)
    argv = _container(job)["command"][2:]
    # The load generator's own parser, as the pod runs it.
    plan, _options = loadgen_cli.parse(argv)
    assert plan.retry == lab.spec.load.retry
    assert plan.retry is not None and plan.retry.kind == "backoff" and plan.retry.breaker
    assert plan.trigger is not None
    assert (plan.trigger.start_s, plan.trigger.duration_s) == (5, 5)
    assert (plan.trigger.mode, plan.trigger.extra_millis) == ("slow", 1000)
    assert plan.fault_token_file == builders.FAULT_TOKEN_FILE
    assert (plan.rate, plan.duration_s, plan.balancing) == (20, 20, "round-robin")
    assert plan.storm
    # The Job's deadline covers the storm run: calibration, every arrival, each request's
    # longest life (retries timing out, backoff), and the pod's own start.
    deadline = job["spec"]["activeDeadlineSeconds"]
    assert deadline == SETTINGS.load_deadline_seconds  # 1800 s is far above this run
    short = OperatorSettings(load_deadline_seconds=10)
    needed = builders.load_deadline_seconds(plan, short)
    assert plan.duration_s is not None and needed > plan.duration_s + 5 * plan.timeout_s
    assert builders.build_load_job(lab, short)["spec"]["activeDeadlineSeconds"] == needed


# --- phase 6: the slow pool -----------------------------------------------------------------


def test_the_slow_pool_is_a_second_deployment_of_slow_pods() -> None:
    lab = _balancing()
    fast = builders.build_deployment(lab, SETTINGS)
    slow = builders.build_slow_deployment(lab, SETTINGS)
    assert slow is not None
    assert fast["metadata"]["name"] == "balancing-lab-node"
    assert slow["metadata"]["name"] == names.slow_deployment("balancing-lab")
    assert slow["metadata"]["name"] == "balancing-lab-node-slow"
    assert (fast["spec"]["replicas"], slow["spec"]["replicas"]) == (2, 1)  # 3 pods, 1 slow
    # The fast Deployment's selector is the one every lab had (immutable on the server).
    assert fast["spec"]["selector"]["matchLabels"] == names.node_selector("balancing-lab")
    fast_pods = fast["spec"]["template"]["metadata"]["labels"]
    slow_pods = slow["spec"]["template"]["metadata"]["labels"]
    fast_selects = fast["spec"]["selector"]["matchLabels"].items()
    slow_selects = slow["spec"]["selector"]["matchLabels"].items()
    # Disjoint: each Deployment's selector matches its own pods and never the other pool's.
    assert fast_selects <= fast_pods.items() and not fast_selects <= slow_pods.items()
    assert slow_selects <= slow_pods.items() and not slow_selects <= fast_pods.items()
    # One pair of Services in front of both pools.
    for service in (
        builders.build_service(lab, SETTINGS),
        builders.build_headless_service(lab, SETTINGS),
    ):
        selects = service["spec"]["selector"].items()
        assert selects <= fast_pods.items() and selects <= slow_pods.items()
    # Same labels on both Deployments (one watch sees both); same pods but for the slowness.
    assert slow["metadata"]["labels"] == fast["metadata"]["labels"]
    assert _node_settings(slow).service_factor == 5.0
    assert _node_settings(slow).extra_millis == 0
    assert _node_settings(fast).service_factor == 1.0
    fast_command, slow_command = _container(fast)["command"], _container(slow)["command"]
    assert slow_command[: len(fast_command)] == fast_command
    assert slow_command[len(fast_command) :] == ["--service-factor", "5.0"]
    assert _container(slow)["resources"] == _container(fast)["resources"]
    _assert_restricted(slow)


def test_extra_millis_of_the_slow_pool() -> None:
    document = balancing_lab()
    document["spec"]["node"]["slowPool"] = {"replicas": 2, "extraMillis": 40}
    lab = spec.parse_nodelab(document)
    slow = builders.build_slow_deployment(lab, SETTINGS)
    assert slow is not None and slow["spec"]["replicas"] == 2
    assert builders.build_deployment(lab, SETTINGS)["spec"]["replicas"] == 1
    assert (_node_settings(slow).service_factor, _node_settings(slow).extra_millis) == (1.0, 40)


def test_the_slow_deployment_follows_the_fast_one_in_the_children() -> None:
    kinds = [
        (c["kind"], c["metadata"]["name"]) for c in builders.build_children(_balancing(), SETTINGS)
    ]
    assert kinds[3:] == [
        ("Deployment", "balancing-lab-node"),
        ("Deployment", "balancing-lab-node-slow"),
        ("Service", "balancing-lab-node"),
        ("Service", "balancing-lab-node-headless"),
    ]
    assert builders.build_slow_deployment(spec.load_phase_file(SCALING[0]), SETTINGS) is None


def test_the_balancing_jobs_plan_carries_the_strategy() -> None:
    plan, _options = loadgen_cli.parse(builders.build_load_argv(_balancing(), SETTINGS))
    assert plan.balancing == "least-outstanding"
    assert plan.targets == ("http://balancing-lab-node-headless.default.svc:8080",)
    assert plan.expand_dns and plan.retry is None and plan.trigger is None
    assert plan.fault_token_file is None


def test_building_twice_gives_the_same_objects() -> None:
    # The token is the one input that is not the lab's; read back from the Secret, it is the
    # same, so an apply after the first changes nothing.
    for lab in (_storm(), _balancing()):
        first = [
            *builders.build_children(lab, SETTINGS, fault_token=TOKEN),
            builders.build_load_job(lab, SETTINGS),
        ]
        secret = next((c for c in first if c["kind"] == "Secret"), None)
        token = builders.fault_token_of(secret) or TOKEN
        again = [
            *builders.build_children(lab, SETTINGS, fault_token=token),
            builders.build_load_job(lab, SETTINGS),
        ]
        assert again == first
