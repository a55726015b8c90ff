"""The spec model and its offline validation: defaults, schema, CEL rules, quantities."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from nodelab.model import crd, names, quantity, spec, validation

from tests.support.lab_documents import lab_document

Doc = dict[str, Any]


def _errors(document: Doc) -> list[str]:
    with pytest.raises(validation.SpecInvalid) as caught:
        spec.parse_nodelab(document)
    return [str(error) for error in caught.value.errors]


# --- defaults -----------------------------------------------------------------------------


def test_an_empty_node_and_load_get_every_default() -> None:
    lab = spec.parse_nodelab(lab_document())
    assert lab.spec.node == spec.NodeSpec(
        replicas=1,
        workers=1,
        cpu_per_worker="500m",
        memory_per_worker="128Mi",
        load_factor=30,
        io_millis=0,
        image=None,
    )
    assert lab.spec.load == spec.LoadSpec(
        concurrency=5,
        requests=spec.DEFAULT_REQUESTS,
        duration_seconds=None,
        rate=None,
        sweep=(),
        timeout_seconds=120,
        processes=1,
        path="/work",
    )
    assert lab.spec.slo == spec.SloSpec(p99_millis=5000)
    assert (lab.name, lab.namespace, lab.generation) == ("lab", "default", 1)


def test_a_duration_replaces_the_default_request_count() -> None:
    load = spec.parse_nodelab(lab_document(load={"durationSeconds": 30})).spec.load
    assert (load.requests, load.duration_seconds) == (None, 30)


def test_metadata_namespace_and_generation_are_kept() -> None:
    document = lab_document()
    document["metadata"].update(namespace="team-a", generation=7)
    lab = spec.parse_nodelab(document)
    assert (lab.namespace, lab.generation) == ("team-a", 7)


def test_values_are_typed() -> None:
    document = lab_document(load={"rate": 20, "requests": 100}, node={"image": ""})
    lab = spec.parse_nodelab(document)
    assert lab.spec.load.rate == 20.0 and isinstance(lab.spec.load.rate, float)
    assert lab.spec.node.image is None, "an empty image means the operator's own"
    swept = spec.parse_nodelab(lab_document(load={"sweep": [1, 5, 10]})).spec.load.sweep
    assert swept == (1, 5, 10)


def test_defaults_do_not_touch_the_input_and_keep_given_values() -> None:
    document = lab_document(node={"workers": 4, "work": {"ioMillis": 50}})
    before = copy.deepcopy(document)
    defaulted = validation.apply_defaults(document, crd.spec_schema())
    assert document == before
    node = defaulted["spec"]["node"]
    assert node["workers"] == 4 and node["replicas"] == 1
    assert node["work"] == {"ioMillis": 50, "loadFactor": 30}, "defaults fill inside given objects"
    assert defaulted["spec"]["slo"] == {"p99Millis": 5000}, "an absent object with default {}"


def test_status_is_ignored_when_parsing() -> None:
    document = lab_document()
    document["status"] = {"phase": "Nonsense", "history": "not a list"}
    assert spec.parse_nodelab(document).spec.node.workers == 1


def test_parse_spec_takes_the_bare_spec_the_operator_receives() -> None:
    parsed = spec.parse_spec({"node": {"workers": 10}, "load": {"concurrency": 20}}, name="x")
    assert (parsed.node.workers, parsed.load.concurrency) == (10, 20)
    with pytest.raises(validation.SpecInvalid, match='NodeLab "x"'):
        spec.parse_spec({"node": {"workers": 0}, "load": {}}, name="x")


def test_derived_pod_size_and_capacity() -> None:
    node = spec.parse_nodelab(
        lab_document(
            node={"replicas": 3, "workers": 10, "cpuPerWorker": "0.25", "memoryPerWorker": "1Gi"}
        )
    ).spec.node
    assert node.pod_cpu_millicores == 2500
    assert node.pod_memory_mebibytes == 10240
    assert node.capacity == 30


# --- schema and CEL errors ----------------------------------------------------------------


def test_every_schema_error_is_reported_at_once() -> None:
    errors = _errors(lab_document(node={"workers": 0, "replicas": 21}, load={"concurrency": 0}))
    assert errors == [
        "spec.load.concurrency: Invalid value: 0: should be greater than or equal to 1",
        "spec.node.replicas: Invalid value: 21: should be less than or equal to 20",
        "spec.node.workers: Invalid value: 0: should be greater than or equal to 1",
    ]


def test_cel_rules_run_only_on_a_schema_valid_object() -> None:
    # Both a schema error and a CEL violation: as in the API server, only the schema error.
    errors = _errors(lab_document(node={"workers": 0}, load={"requests": 5, "durationSeconds": 5}))
    assert errors == ["spec.node.workers: Invalid value: 0: should be greater than or equal to 1"]


def test_several_cel_rules_can_fail_together() -> None:
    load = {"requests": 5, "durationSeconds": 5, "rate": 3, "sweep": [2, 2]}
    errors = _errors(lab_document(load=load))
    assert [e.split(":")[0] for e in errors] == [
        "spec.load.durationSeconds",
        "spec.load.sweep",
        "spec.load.sweep",
    ]


@pytest.mark.parametrize(
    ("replicas", "workers", "valid"), [(16, 16, True), (4, 64, True), (17, 16, False)]
)
def test_fleet_size_limit_is_inclusive(replicas: int, workers: int, valid: bool) -> None:
    document = lab_document(node={"replicas": replicas, "workers": workers})
    if valid:
        assert spec.parse_nodelab(document).spec.node.capacity == replicas * workers
    else:
        assert _errors(document) == [
            "spec.node.workers: Invalid value: spec.node.replicas x spec.node.workers must be "
            "at most 256 node processes"
        ]


@pytest.mark.parametrize("cpu", ["0", "0.0", "0.000", "00"])
def test_a_worker_without_cpu_is_refused(cpu: str) -> None:
    # Found against a real API server: the pattern alone admits them, and the pod then asked
    # for no CPU at all.
    assert _errors(lab_document(node={"cpuPerWorker": cpu})) == [
        "spec.node.cpuPerWorker: Invalid value: spec.node.cpuPerWorker must be more than zero"
    ]


@pytest.mark.parametrize("cpu", ["1", "0.5", "0.001", "250m", "2.5"])
def test_a_worker_with_some_cpu_is_fine(cpu: str) -> None:
    assert (
        spec.parse_nodelab(lab_document(node={"cpuPerWorker": cpu})).spec.node.cpu_per_worker == cpu
    )


def test_a_sweep_of_distinct_levels_and_a_lone_rate_are_fine() -> None:
    assert spec.parse_nodelab(lab_document(load={"sweep": [20, 1, 5]})).spec.load.sweep == (
        20,
        1,
        5,
    )
    assert spec.parse_nodelab(lab_document(load={"rate": 0.5})).spec.load.rate == 0.5


def test_unknown_fields_are_named_with_their_full_path() -> None:
    assert _errors(lab_document(node={"work": {"loadfactor": 30}})) == [
        "spec.node.work.loadfactor: unknown field"
    ]
    assert _errors({**lab_document(), "extra": 1}) == ["extra: unknown field"]


def test_metadata_is_free_form() -> None:
    document = lab_document()
    document["metadata"]["labels"] = {"team": "a"}
    assert spec.parse_nodelab(document).name == "lab"


# Legal NodeLab names (DNS subdomains) whose children the API refuses: "lab.v2-node-headless" is
# no Service name. The last is one character longer than names.MAX_LAB_NAME.
BAD_NAMES = ["1lab", "lab.v2", "Lab", "lab-", "-lab", "la_b", "a" * 41]
GOOD_NAMES = ["a", "lab", "scaling-lab", "l4b-2", "a" * 40]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_children_cannot_carry_is_refused_up_front(name: str) -> None:
    document = lab_document()
    document["metadata"]["name"] = name
    (error,) = _errors(document)
    assert error.startswith(f"metadata.name: Invalid value: {name!r}: must be a DNS-1035 label")
    assert f"at most {names.MAX_LAB_NAME} characters" in error


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_a_dns_label_name_is_accepted(name: str) -> None:
    document = lab_document()
    document["metadata"]["name"] = name
    assert spec.parse_nodelab(document).name == name
    assert names.validate_lab_name(name) is None


def _crd_name_rule_errors(name: str) -> list[validation.FieldError]:
    # The CRD's own rule, without the offline identity check in front of it.
    document = lab_document()
    document["metadata"]["name"] = name
    schema = crd.spec_schema()
    return validation.validate_object(validation.apply_defaults(document, schema), schema)


@pytest.mark.parametrize("name", BAD_NAMES + GOOD_NAMES)
def test_the_crd_refuses_exactly_the_names_the_operator_refuses(name: str) -> None:
    refused = names.validate_lab_name(name) is not None
    errors = _crd_name_rule_errors(name)
    assert bool(errors) == refused, errors
    assert all("metadata.name" in error.message for error in errors)


def test_the_crd_name_rule_checks_creates_only() -> None:
    # A NodeLab that exists already (made before the rule) must stay updatable: kopf removes its
    # finalizer with an update, which a rule on every write would refuse forever.
    (rule,) = crd.spec_schema()["x-kubernetes-validations"]
    assert rule["optionalOldSelf"] is True
    assert rule["rule"].startswith("oldSelf.hasValue() ||")


def test_transition_rules_follow_the_api_servers_create_semantics() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "x-kubernetes-validations": [
            # Without optionalOldSelf a transition rule does not run on create.
            {"rule": "self.n == oldSelf.n", "message": "immutable"},
            # With it, oldSelf is an optional holding nothing.
            {"rule": "oldSelf.hasValue() || self.n > 1", "optionalOldSelf": True, "message": "n"},
        ],
    }
    assert validation.validate_object({"n": 2}, schema) == []
    assert [str(e) for e in validation.validate_object({"n": 1}, schema)] == [
        "<root>: Invalid value: n"
    ]


def test_identity_errors_come_before_the_spec_is_looked_at() -> None:
    document = lab_document(node={"workers": 0})
    document["kind"] = "Lab"
    del document["metadata"]
    assert _errors(document) == ["kind: must be NodeLab", "metadata.name: Required value"]


def test_a_missing_spec_is_required() -> None:
    document = lab_document()
    del document["spec"]
    assert _errors(document) == ["spec: Required value"]


def test_wrong_types_name_the_expected_type() -> None:
    assert _errors(lab_document(load={"sweep": "1,2"})) == [
        "spec.load.sweep: Invalid value: '1,2': must be of type array"
    ]


def test_spec_invalid_message_names_the_lab_and_every_field() -> None:
    error = validation.SpecInvalid(
        "lab",
        [validation.FieldError("spec.a", "bad"), validation.FieldError("spec.b", "worse")],
    )
    assert str(error) == 'NodeLab "lab" is invalid: spec.a: bad; spec.b: worse'
    assert isinstance(error, ValueError)


def test_validate_object_returns_no_errors_for_a_good_document() -> None:
    schema = crd.spec_schema()
    assert (
        validation.validate_object(validation.apply_defaults(lab_document(), schema), schema) == []
    )


# --- phase files --------------------------------------------------------------------------


def test_load_phase_file_refuses_an_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(validation.SpecInvalid, match="expected exactly one NodeLab document"):
        spec.load_phase_file(empty)


def test_load_phase_file_refuses_a_list(tmp_path: Path) -> None:
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(validation.SpecInvalid, match="<file>"):
        spec.load_phase_file(listed)


def test_crd_helpers() -> None:
    assert crd.api_version() == "lab.nodelab.dev/v1alpha1"
    schema = crd.spec_schema()
    assert schema["required"] == ["spec"]
    assert set(schema["properties"]) >= {"spec", "status"}


# --- quantities ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "millicores"),
    [("500m", 500), ("1", 1000), ("1.5", 1500), ("0.125", 125), ("2.05", 2050), ("0m", 0)],
)
def test_cpu_millicores(text: str, millicores: int) -> None:
    assert quantity.cpu_millicores(text) == millicores


@pytest.mark.parametrize("text", ["", "m", "1.2345", "-1", "1k", "0.5m", " 1", "1e3"])
def test_cpu_millicores_refuses_what_the_crd_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a CPU quantity"):
        quantity.cpu_millicores(text)


@pytest.mark.parametrize(("millicores", "text"), [(5000, "5"), (2500, "2500m"), (500, "500m")])
def test_format_cpu(millicores: int, text: str) -> None:
    assert quantity.format_cpu(millicores) == text
    assert quantity.cpu_millicores(text) == millicores


@pytest.mark.parametrize(("text", "mebibytes"), [("128Mi", 128), ("1Gi", 1024), ("512Ki", 0.5)])
def test_memory_mebibytes(text: str, mebibytes: float) -> None:
    assert quantity.memory_mebibytes(text) == mebibytes


@pytest.mark.parametrize("text", ["128", "1G", "1.5Gi", "Mi", "128mi"])
def test_memory_mebibytes_refuses_other_units(text: str) -> None:
    with pytest.raises(ValueError, match="not a memory quantity"):
        quantity.memory_mebibytes(text)


@pytest.mark.parametrize(("mebibytes", "text"), [(1280, "1280Mi"), (0.5, "1Mi"), (128.01, "129Mi")])
def test_format_memory_rounds_up_to_whole_mebibytes(mebibytes: float, text: str) -> None:
    assert quantity.format_memory(mebibytes) == text


def test_cel_sees_number_fields_as_doubles_as_the_api_server_does() -> None:
    # The server types a `number` field's 5 as the double 5.0, and CEL adds no int to a double:
    # left an int offline, this rule would fail here only.
    schema = {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}, "n": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.a + self.b < double(self.n)", "message": "m"}],
    }
    assert validation.validate_object({"a": 1, "b": 2.5, "n": 4}, schema) == []
    assert [str(e) for e in validation.validate_object({"a": 2, "b": 2, "n": 4}, schema)] == [
        "<root>: Invalid value: m"
    ]
