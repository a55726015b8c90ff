"""The manifests under manifests/, checked offline: API schemas, kustomization, RBAC, Pod Security.

Every Kubernetes object is validated with kubernetes-validate's bundled OpenAPI schemas (strict:
unknown fields are errors) for the oldest and newest Kubernetes this project supports. Phase files
are custom resources, which kubernetes-validate cannot check: they go through
``nodelab.model.spec``, which validates against the CRD's own schema and CEL rules.
"""

from __future__ import annotations

import copy
import importlib.util
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kopf
import kubernetes_validate
import pytest
import yaml
from nodelab.model import crd, spec, validation

from tests.support.phase56_labs import balancing_lab, storm_lab
from tests.support.podsecurity import pod_templates, restricted_violations

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
PHASES = MANIFESTS / "phases"
KUSTOMIZATION = MANIFESTS / "kustomization.yaml"
KIND_CLUSTER = MANIFESTS / "kind-cluster.yaml"

# The oldest Kubernetes still supported by this project and the newest the validator bundles.
KUBERNETES_VERSIONS = ("1.30", "1.37")

# Not API objects: kustomize's and kind's own configs, and the phases (custom resources).
NOT_API_OBJECTS = {KUSTOMIZATION, KIND_CLUSTER}

Doc = dict[str, Any]
Rules = dict[tuple[str, str], frozenset[str]]

# What `nodelab operator --all-namespaces` calls, and so exactly what its ClusterRole grants.
OPERATOR_RULES: Rules = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): frozenset({"list", "watch"}),
    ("", "namespaces"): frozenset({"list", "watch"}),
    ("lab.nodelab.dev", "nodelabs"): frozenset({"get", "list", "watch", "patch"}),
    ("lab.nodelab.dev", "nodelabs/status"): frozenset({"get", "patch"}),
    ("lab.nodelab.dev", "nodelabs/finalizers"): frozenset({"update"}),
    ("apps", "deployments"): frozenset({"get", "list", "watch", "create", "patch", "delete"}),
    ("", "services"): frozenset({"get", "create", "patch"}),
    ("", "serviceaccounts"): frozenset({"get", "create", "patch"}),
    ("", "secrets"): frozenset({"get", "create", "patch"}),
    ("rbac.authorization.k8s.io", "roles"): frozenset({"get", "create", "patch"}),
    ("rbac.authorization.k8s.io", "rolebindings"): frozenset({"get", "create", "patch"}),
    ("batch", "jobs"): frozenset({"get", "list", "watch", "create", "delete"}),
    ("", "pods"): frozenset({"list", "watch"}),
    ("", "events"): frozenset({"create"}),
}

# The per-lab Role of the load Job; RBAC refuses to let the operator create a Role granting
# more than the operator holds itself.
LOADGEN_RULES: Rules = {
    ("lab.nodelab.dev", "nodelabs"): frozenset({"get"}),
    ("lab.nodelab.dev", "nodelabs/status"): frozenset({"get", "patch"}),
}


def _yaml_documents(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def _api_object_files() -> list[Path]:
    files = sorted(MANIFESTS.rglob("*.yaml"))
    return [f for f in files if f not in NOT_API_OBJECTS and PHASES not in f.parents]


def _api_objects() -> list[tuple[str, Doc]]:
    return [
        (f"{path.relative_to(MANIFESTS)}#{index}", doc)
        for path in _api_object_files()
        for index, doc in enumerate(_yaml_documents(path))
    ]


def _objects_of_kind(kind: str) -> list[Doc]:
    return [doc for _, doc in _api_objects() if doc["kind"] == kind]


def _one(kind: str) -> Doc:
    found = _objects_of_kind(kind)
    assert len(found) == 1, f"expected one {kind} under manifests/, found {len(found)}"
    return found[0]


def _rules(role: Doc) -> Rules:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return {key: frozenset(verbs) for key, verbs in granted.items()}


def _phase_files() -> list[Path]:
    return sorted(PHASES.glob("*.yaml"))


def _as_manifest(obj: Any) -> Doc:
    """A builder's output, which must be a plain manifest dict (the handlers send it as is)."""
    assert isinstance(obj, dict), f"builders return plain dicts, got {type(obj).__name__}"
    return obj


# --- Kubernetes API schemas -----------------------------------------------------------------


def test_the_validator_bundles_the_versions_checked() -> None:
    assert kubernetes_validate.latest_version().startswith(KUBERNETES_VERSIONS[-1])


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    ("where", "obj"), _api_objects(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_object_validates_strictly(where: str, obj: Doc, version: str) -> None:
    try:
        used = kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(map(str, error.absolute_path))
        pytest.fail(f"{where} invalid for Kubernetes {version} at {path}: {error.message}")
    # The validator silently falls back to an older schema set; make sure it did not.
    assert used == version


def test_strict_validation_rejects_an_unknown_field() -> None:
    deployment = copy.deepcopy(_one("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Never"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolcy"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_every_api_object_has_a_name_and_namespaced_objects_a_namespace() -> None:
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    for where, obj in _api_objects():
        assert obj["metadata"].get("name"), where
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"].get("namespace") == "nodelab-system", where


# --- kustomization --------------------------------------------------------------------------


def test_kustomization_lists_exactly_the_api_object_files() -> None:
    kustomization = _yaml_documents(KUSTOMIZATION)[0]
    listed = [MANIFESTS / entry for entry in kustomization["resources"]]
    missing = [str(p.relative_to(MANIFESTS)) for p in listed if not p.is_file()]
    assert not missing, f"kustomization.yaml lists files that do not exist: {missing}"
    assert len(listed) == len(set(listed)), "kustomization.yaml lists a file twice"
    unlisted = sorted(set(_api_object_files()) - set(listed))
    assert not unlisted, f"not in kustomization.yaml: {[str(p) for p in unlisted]}"
    assert not any(PHASES in p.parents for p in listed), "phases are applied by the user"


def test_kustomization_installs_the_crd_before_anything_that_could_use_it() -> None:
    resources = _yaml_documents(KUSTOMIZATION)[0]["resources"]
    assert resources[0] == "crd/nodelab.yaml"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_the_same_objects() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    got = sorted((d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(rendered) if d)
    expected = sorted((d["kind"], d["metadata"]["name"]) for _, d in _api_objects())
    assert got == expected


# --- the CRD ----------------------------------------------------------------------------------


def test_the_package_carries_the_manifests_crd() -> None:
    # operator/nodelab/model/crd.yaml is what the local runtime validates with: it must be this
    # file.
    assert crd.load_crd() == _one("CustomResourceDefinition")


def test_crd_names_match_the_contract() -> None:
    definition = _one("CustomResourceDefinition")
    names = definition["spec"]["names"]
    assert definition["metadata"]["name"] == f"{crd.PLURAL}.{crd.GROUP}"
    assert (names["kind"], names["plural"], names["shortNames"]) == ("NodeLab", "nodelabs", ["nl"])
    (version,) = definition["spec"]["versions"]
    assert version["name"] == crd.VERSION and version["storage"] and version["served"]
    assert version["subresources"] == {"status": {}}
    columns = version["additionalPrinterColumns"]
    # The default table (priority 0) stays as narrow as phases 1-4 made it.
    assert [c["name"] for c in columns if not c.get("priority")] == [
        "Replicas",
        "Workers",
        "Concurrency",
        "P50",
        "P99",
        "RPS",
        "Verdict",
        "Phase",
        "Age",
    ]
    # What phases 5 and 6 are read by, for `kubectl get nodelabs -o wide`.
    wide = {c["name"]: (c["jsonPath"], c["type"]) for c in columns if c.get("priority") == 1}
    assert wide == {
        "Amplification": (".status.lastRun.storm.amplification", "number"),
        "Recovery": (".status.lastRun.storm.recoverySeconds", "number"),
        "Balancing": (".spec.load.balancing", "string"),
    }
    assert all(c.get("description") for c in columns if c["name"] in wide)


def _schema_nodes(schema: Doc, path: str) -> Iterator[tuple[str, Doc]]:
    yield path, schema
    for key, sub in (schema.get("properties") or {}).items():
        yield from _schema_nodes(sub, f"{path}.{key}")
    if "items" in schema:
        yield from _schema_nodes(schema["items"], f"{path}[]")


def test_every_spec_field_is_described_for_kubectl_explain() -> None:
    undocumented = [
        path
        for path, node in _schema_nodes(crd.spec_schema()["properties"]["spec"], "spec")
        if not node.get("description") and not path.endswith("[]")
    ]
    assert not undocumented, f"fields without a description: {undocumented}"


# --- phase files ----------------------------------------------------------------------------


# Phases 1-4 (and the challenge) update one NodeLab; phase 5's files another, phase 6's a third.
LAB_OF_PHASE = {"5": "storm-lab", "6": "balancing-lab"}


@pytest.mark.parametrize("path", _phase_files(), ids=lambda p: p.name)
def test_phase_file_validates_against_the_crd(path: Path) -> None:
    lab = spec.load_phase_file(path)
    number = path.name.split("-")[1][:1] if path.name.startswith("phase-") else ""
    wanted = LAB_OF_PHASE.get(number, "scaling-lab")
    assert lab.name == wanted, "every file of a phase family updates the same NodeLab"
    assert lab.spec.node.pod_cpu_millicores > 0


def test_the_phases_tell_the_workshop_story() -> None:
    labs = {
        p.name.split("-")[1]: spec.load_phase_file(p).spec
        for p in PHASES.glob("phase-[1-4]-*.yaml")
    }
    assert sorted(labs) == ["1", "2", "3", "4"]
    one, two, three, four = (labs[n] for n in "1234")
    assert (one.node.replicas, one.node.workers, one.load.concurrency) == (1, 1, 5)
    assert (two.node.replicas, two.node.workers, two.load.concurrency) == (1, 10, 5)
    assert (three.node.replicas, three.node.workers, three.load.concurrency) == (1, 10, 20)
    assert (four.node.replicas, four.node.workers, four.load.concurrency) == (3, 10, 20)
    assert {lab.node.load_factor for lab in labs.values()} == {35}
    challenge = spec.load_phase_file(PHASES / "challenge-sweep.yaml").spec
    assert challenge.node.workers == 10 and len(challenge.load.sweep) > 1


def _phase_one() -> Doc:
    return _yaml_documents(PHASES / "phase-1-overwhelm.yaml")[0]


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        *parents, leaf = path.split(".")
        target = doc
        for key in parents:
            target = target.setdefault(key, {})
        target[leaf] = value

    return mutate


def _drop(path: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        *parents, leaf = path.split(".")
        target = doc
        for key in parents:
            target = target[key]
        del target[leaf]

    return mutate


def _both(*mutations: Callable[[Doc], None]) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        for mutation in mutations:
            mutation(doc)

    return mutate


# (what is wrong, how to make phase 1 wrong that way, the field named, words in the message)
BAD_PHASES: list[tuple[str, Callable[[Doc], None], str, str]] = [
    ("workers 0", _set("spec.node.workers", 0), "spec.node.workers", "at least 1"),
    ("workers past 64", _set("spec.node.workers", 65), "spec.node.workers", "less than or equal"),
    ("replicas 0", _set("spec.node.replicas", 0), "spec.node.replicas", "greater than or equal"),
    ("unknown field", _set("spec.node.cpu", 2), "spec.node.cpu", "unknown field"),
    ("unknown spec section", _set("spec.nodes", {}), "spec.nodes", "unknown field"),
    ("workers as a string", _set("spec.node.workers", "10"), "spec.node.workers", "integer"),
    (
        "cpu not a quantity",
        _set("spec.node.cpuPerWorker", "half"),
        "spec.node.cpuPerWorker",
        "match",
    ),
    ("memory in G", _set("spec.node.memoryPerWorker", "1G"), "spec.node.memoryPerWorker", "match"),
    ("load factor 41", _set("spec.node.work.loadFactor", 41), "spec.node.work.loadFactor", "40"),
    ("path not served", _set("spec.load.path", "/data"), "spec.load.path", "/work, /health"),
    ("rate 0", _set("spec.load.rate", 0), "spec.load.rate", "greater than 0"),
    (
        "requests and durationSeconds",
        _set("spec.load.durationSeconds", 10),
        "spec.load.durationSeconds",
        "requests or durationSeconds",
    ),
    (
        "rate and sweep",
        _both(_set("spec.load.rate", 5), _set("spec.load.sweep", [1, 2])),
        "spec.load.sweep",
        "spec.load.rate",
    ),
    ("repeated sweep level", _set("spec.load.sweep", [1, 5, 5]), "spec.load.sweep", "repeat"),
    ("sweep level 0", _set("spec.load.sweep", [0, 5]), "spec.load.sweep[0]", "at least 1"),
    ("21 sweep levels", _set("spec.load.sweep", list(range(1, 22))), "spec.load.sweep", "20 items"),
    (
        "replicas x workers > 256",
        _both(_set("spec.node.replicas", 20), _set("spec.node.workers", 13)),
        "spec.node.workers",
        "256",
    ),
    ("slo 0", _set("spec.slo.p99Millis", 0), "spec.slo.p99Millis", "greater than or equal"),
    ("no load section", _drop("spec.load"), "spec.load", "Required"),
    ("no name", _drop("metadata.name"), "metadata.name", "Required"),
    ("name not a DNS label", _set("metadata.name", "lab.v2"), "metadata.name", "DNS-1035"),
    ("wrong kind", _set("kind", "Deployment"), "kind", "NodeLab"),
    ("wrong apiVersion", _set("apiVersion", "lab.nodelab.dev/v1"), "apiVersion", "v1alpha1"),
]


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [pytest.param(m, f, w, id=label) for label, m, f, w in BAD_PHASES],
)
def test_bad_phase_is_refused_naming_the_field(
    mutate: Callable[[Doc], None], field: str, words: str
) -> None:
    document = copy.deepcopy(_phase_one())
    mutate(document)
    with pytest.raises(validation.SpecInvalid) as caught:
        spec.parse_nodelab(document)
    fields = [error.field for error in caught.value.errors]
    assert fields == [field], str(caught.value)
    assert words.replace("at least 1", "greater than or equal to 1") in str(caught.value)
    assert str(caught.value).startswith('NodeLab "'), "the message says which NodeLab"


def test_a_phase_file_with_two_documents_is_refused(tmp_path: Path) -> None:
    text = (PHASES / "phase-1-overwhelm.yaml").read_text(encoding="utf-8")
    twice = tmp_path / "twice.yaml"
    twice.write_text(text + "\n---\n" + text, encoding="utf-8")
    with pytest.raises(validation.SpecInvalid, match="exactly one NodeLab"):
        spec.load_phase_file(twice)


# --- kind -------------------------------------------------------------------------------------


def test_kind_cluster_has_one_control_plane_and_three_workers() -> None:
    (config,) = _yaml_documents(KIND_CLUSTER)
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    roles = [node["role"] for node in config["nodes"]]
    assert roles.count("control-plane") == 1
    assert roles.count("worker") == 3
    assert len(roles) == 4


# --- RBAC -------------------------------------------------------------------------------------


def _rbac_roles() -> list[tuple[str, Doc]]:
    return [(w, o) for w, o in _api_objects() if o["kind"] in {"Role", "ClusterRole"}]


@pytest.mark.parametrize(
    ("where", "role"), _rbac_roles(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_no_rbac_rule_has_a_wildcard(where: str, role: Doc) -> None:
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert all("*" not in entry for entry in rule.get(key, [])), f"{where}: {key} {rule}"
        assert "nonResourceURLs" not in rule, where
        assert "resourceNames" not in rule or rule["resourceNames"], where


def test_operator_cluster_role_grants_exactly_what_the_operator_uses() -> None:
    granted = _rules(_one("ClusterRole"))
    assert granted == OPERATOR_RULES
    # No verb that escalates: the operator holds what its per-lab Roles grant instead.
    every_verb = set().union(*granted.values())
    assert not every_verb & {"escalate", "bind", "impersonate", "deletecollection"}
    # `update` only where blockOwnerDeletion needs it, never on an object itself.
    assert {key for key, verbs in granted.items() if "update" in verbs} == {
        ("lab.nodelab.dev", "nodelabs/finalizers")
    }
    # Secrets: the fault token only (read back, created, patched), never listed or watched.
    assert granted[("", "secrets")] == {"get", "create", "patch"}
    # delete only where owner references do not clean up: old Jobs, a slow pool that is gone.
    assert {key for key, verbs in granted.items() if "delete" in verbs} == {
        ("batch", "jobs"),
        ("apps", "deployments"),
    }


def test_operator_holds_everything_the_load_job_role_grants() -> None:
    granted = _rules(_one("ClusterRole"))
    for key, verbs in LOADGEN_RULES.items():
        assert verbs <= granted.get(key, frozenset()), key


def test_the_binding_gives_the_role_to_the_operator_service_account() -> None:
    binding, role, account = _one("ClusterRoleBinding"), _one("ClusterRole"), _one("ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]
    deployment = _one("Deployment")
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    )


# --- the operator Deployment and Pod Security -----------------------------------------------


def test_namespace_enforces_the_restricted_profile() -> None:
    labels = _one("Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_operator_deployment_runs_one_standalone_operator() -> None:
    deployment = _one("Deployment")
    assert deployment["spec"]["replicas"] == 1
    # Without kopf peering, a rolling update would run two operators at once for a while.
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "nodelab:dev"
    assert container["imagePullPolicy"] == "IfNotPresent", "kind load puts the image on the nodes"
    assert container["args"][:2] == ["operator", "--all-namespaces"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NODELAB_IMAGE"] == container["image"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_liveness_probe_asks_kopfs_health_endpoint() -> None:
    (container,) = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    url = env["NODELAB_OPERATOR_LIVENESS"]
    assert url.startswith("http://0.0.0.0:"), "kopf must listen on the pod's address"
    port, path = url.removeprefix("http://0.0.0.0:").split("/", 1)
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert probe["path"] == f"/{path}"
    assert ports[probe["port"]] == int(port)


def test_tmp_is_the_only_writable_path_of_the_operator() -> None:
    pod = _one("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"]
    assert [v for v in pod["volumes"] if "emptyDir" in v] == pod["volumes"]


def _manifest_pod_templates() -> list[tuple[str, Any]]:
    return [item for _, obj in _api_objects() for item in pod_templates(obj)]


@pytest.mark.parametrize(
    ("label", "pod"), _manifest_pod_templates(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_manifest_pod_template_meets_restricted(label: str, pod: Doc) -> None:
    assert restricted_violations(pod) == [], label


def test_manifests_have_pod_templates_to_check() -> None:
    assert [label for label, _ in _manifest_pod_templates()] == ["Deployment/nodelab-operator"]


# --- builder outputs (the pods the operator creates) ------------------------------------------


def _builders() -> Any:
    if importlib.util.find_spec("nodelab.kube.builders") is None:
        pytest.skip("nodelab.kube.builders does not exist yet")
    import nodelab.kube.builders
    import nodelab.kube.settings

    return nodelab.kube.builders, nodelab.kube.settings.OperatorSettings()


def _built(path: Path) -> list[Doc]:
    return _built_lab(spec.load_phase_file(path))


# Phases 5 and 6 as the operator's tests build them, whether or not their files are shipped yet.
LABS_56 = {"storm-lab": storm_lab, "balancing-lab": balancing_lab}


def _built_lab(lab: spec.NodeLab) -> list[Doc]:
    builders, settings = _builders()
    children = [
        *builders.build_children(lab, settings, fault_token="token-" * 7),
        builders.build_load_job(lab, settings),
    ]
    return [_as_manifest(obj) for obj in children]


@pytest.mark.parametrize("path", _phase_files(), ids=lambda p: p.name)
def test_builder_objects_validate_strictly(path: Path) -> None:
    for obj in _built(path):
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = ".".join(map(str, error.absolute_path))
                pytest.fail(
                    f"{obj['kind']} for {path.name} invalid for Kubernetes {version} "
                    f"at {where}: {error.message}"
                )


@pytest.mark.parametrize("path", _phase_files(), ids=lambda p: p.name)
@pytest.mark.parametrize("builder", ["build_deployment", "build_load_job"])
def test_builder_pod_template_meets_restricted(path: Path, builder: str) -> None:
    builders, settings = _builders()
    obj = _as_manifest(getattr(builders, builder)(spec.load_phase_file(path), settings))
    pods = list(pod_templates(obj))
    assert len(pods) == 1, f"{builder} should build one pod template"
    for label, pod in pods:
        assert restricted_violations(pod) == [], f"{builder}({path.name}): {label}"


@pytest.mark.parametrize("name", sorted(LABS_56))
def test_phase_5_and_6_children_validate_strictly_and_meet_restricted(name: str) -> None:
    built = _built_lab(spec.parse_nodelab(LABS_56[name]()))
    for obj in built:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        for label, pod in pod_templates(obj):
            assert restricted_violations(pod) == [], f"{name}: {label}"
    kinds = sorted(obj["kind"] for obj in built)
    extra = "Secret" if name == "storm-lab" else "Deployment"  # the token, or the slow pool
    assert kinds.count(extra) == 2 if extra == "Deployment" else kinds.count(extra) == 1


def test_the_load_job_role_is_what_the_operator_may_grant() -> None:
    builders, settings = _builders()
    lab = spec.load_phase_file(PHASES / "phase-1-overwhelm.yaml")
    role = _as_manifest(builders.build_loadgen_role(lab, settings))
    assert _rules(role) == LOADGEN_RULES
    for rule in role["rules"]:
        assert rule["resourceNames"] == [lab.name], "the Job may touch its own NodeLab only"
    test_no_rbac_rule_has_a_wildcard("build_loadgen_role", role)


def test_every_kind_the_operator_creates_is_granted_create_and_get() -> None:
    # get: on a 409, nodelab.kube.cluster_api.Cluster.apply reads the object to see whose it is.
    granted = _rules(_one("ClusterRole"))
    built = [
        *_built(PHASES / "phase-4-horizontal.yaml"),
        *_built_lab(spec.parse_nodelab(storm_lab())),
    ]
    for obj in built:
        group = obj["apiVersion"].rpartition("/")[0]
        resource = obj["kind"].lower() + "s"
        assert {"create", "get"} <= granted.get((group, resource), frozenset()), (group, resource)


def test_the_operator_may_block_the_deletion_of_its_nodelabs() -> None:
    # kopf.adopt sets blockOwnerDeletion on every child. Where the admission plugin
    # OwnerReferencesPermissionEnforcement runs (OpenShift, many hardened clusters), setting it
    # needs `update` on the owner's finalizers subresource, or every create is refused (403).
    children = _built(PHASES / "phase-1-overwhelm.yaml")
    owner = {
        "apiVersion": crd.api_version(),
        "kind": crd.KIND,
        "metadata": {"name": "scaling-lab", "namespace": "default", "uid": "uid-1"},
    }
    kopf.adopt(children, owner=owner)
    references = [ref for child in children for ref in child["metadata"]["ownerReferences"]]
    assert references and all(ref["blockOwnerDeletion"] for ref in references)
    granted = _rules(_one("ClusterRole"))
    assert "update" in granted.get((crd.GROUP, f"{crd.PLURAL}/finalizers"), frozenset())


def _selector_resource(selector: Any) -> tuple[str | None, str]:
    name = selector.plural or selector.kind or selector.any_name or ""
    if name[:1].isupper():  # a kind, e.g. "Deployment"
        name = name.lower() + "s"
    return selector.group, name


def test_the_cluster_role_lets_kopf_watch_every_resource_it_handles() -> None:
    if importlib.util.find_spec("nodelab.kube.main") is None:
        pytest.skip("nodelab.kube.main does not exist yet")
    operator_main = importlib.import_module("nodelab.kube.main")
    settings_module = importlib.import_module("nodelab.kube.settings")
    registry = operator_main.build_registry(settings_module.OperatorSettings())
    # kopf's registry keeps one sub-registry per handler family; none of them is public API.
    families = ("_watching", "_changing", "_spawning", "_indexing")
    selectors = {family: set(getattr(registry, family).get_all_selectors()) for family in families}
    assert set().union(*selectors.values()), "no resource handlers registered"
    # kopf keeps state (finalizer, progress annotations) only on what it has change handlers or
    # timers for; on what it merely watches (kopf.on.event: the lab's children) it writes nothing.
    stateful = selectors["_changing"] | selectors["_spawning"]
    granted = _rules(_one("ClusterRole"))
    for selector in set().union(*selectors.values()):
        group, resource = _selector_resource(selector)
        verbs = [v for (g, r), v in granted.items() if r == resource and group in (None, g)]
        assert verbs, f"kopf handles {resource} but the ClusterRole grants nothing on it"
        needed = {"list", "watch", "patch"} if selector in stateful else {"list", "watch"}
        assert needed <= set().union(*verbs), resource


def test_every_kind_the_operator_calls_is_granted() -> None:
    if importlib.util.find_spec("nodelab.kube.cluster_api") is None:
        pytest.skip("nodelab.kube.cluster_api does not exist yet")
    kinds = importlib.import_module("nodelab.kube.cluster_api").KINDS
    granted = {resource for _, resource in _rules(_one("ClusterRole"))}
    for kind in kinds.values():
        assert kind.plural in granted, (
            f"nodelab.kube.cluster_api calls {kind.plural}; the ClusterRole omits it"
        )
