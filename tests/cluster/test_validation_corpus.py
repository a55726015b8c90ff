"""The server's verdict on NodeLab files equals the offline validator's, field by field.

Every phase file and a corpus of bad ones go through ``kubectl apply --dry-run=server``
(strict field validation, as ``kubectl apply`` does by default) and through
``nodelab.model.spec.parse_nodelab``; both must accept, or both refuse naming the same field.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from nodelab.model import spec as nodelab_spec
from nodelab.model import validation

from tests.cluster.conftest import ROOT
from tests.support.cluster.harness import Cluster, KubectlError

PHASES = sorted((ROOT / "manifests" / "phases").glob("*.yaml"))
BASE = yaml.safe_load((ROOT / "manifests" / "phases" / "phase-1-overwhelm.yaml").read_text())


def _with(path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    *parents, leaf = path.split(".")
    target = document
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value
    return document


def _without(path: str) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    *parents, leaf = path.split(".")
    target = document
    for part in parents:
        target = target[part]
    del target[leaf]
    return document


# (case id, document, the field a refusal must name)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("workers-zero", _with("spec.node.workers", 0), "spec.node.workers"),
    ("replicas-too-many", _with("spec.node.replicas", 21), "spec.node.replicas"),
    ("unknown-field", _with("spec.node.wrokers", 2), "spec.node.wrokers"),
    ("cpu-not-quantity", _with("spec.node.cpuPerWorker", "lots"), "spec.node.cpuPerWorker"),
    ("cpu-zero", _with("spec.node.cpuPerWorker", "0"), "spec.node.cpuPerWorker"),
    (
        "rate-with-sweep",
        _with("spec.load", {"rate": 5, "sweep": [1, 2], "requests": 10}),
        "spec.load",
    ),
    ("concurrency-zero", _with("spec.load.concurrency", 0), "spec.load.concurrency"),
    ("slo-negative", _with("spec.slo.p99Millis", -1), "spec.slo.p99Millis"),
    ("workers-string", _with("spec.node.workers", "ten"), "spec.node.workers"),
    ("name-starts-with-digit", _with("metadata.name", "1lab"), "metadata.name"),
    ("name-with-dot", _with("metadata.name", "lab.v2"), "metadata.name"),
    ("no-spec-node", _without("spec.node"), "spec.node"),
]
GOOD: list[tuple[str, dict[str, Any]]] = [
    (path.name, yaml.safe_load(path.read_text())) for path in PHASES
] + [
    (
        "minimal",
        {k: BASE[k] for k in ("apiVersion", "kind", "metadata")}
        | {"spec": {"node": {}, "load": {}}},
    ),
]


def _server(cluster: Cluster, document: dict[str, Any]) -> str | None:
    """None if the server accepts ``document`` (dry run), else its error text."""
    try:
        cluster.kubectl(
            "apply", "--dry-run=server", "-n", "default", "-f", "-", stdin=yaml.safe_dump(document)
        )
    except KubectlError as exc:
        return exc.stderr
    return None


def _offline(document: dict[str, Any]) -> list[validation.FieldError] | None:
    try:
        nodelab_spec.parse_nodelab(document)
    except validation.SpecInvalid as exc:
        return exc.errors
    return None


@pytest.mark.parametrize(("case", "document"), GOOD, ids=[case for case, _ in GOOD])
def test_both_accept_the_good_files(cluster: Cluster, case: str, document: dict[str, Any]) -> None:
    assert _offline(document) is None, case
    assert _server(cluster, document) is None, case


@pytest.mark.parametrize(("case", "document", "field"), BAD, ids=[case for case, _, _ in BAD])
def test_both_refuse_the_bad_files_naming_the_field(
    cluster: Cluster, case: str, document: dict[str, Any], field: str
) -> None:
    offline = _offline(document)
    server = _server(cluster, document)
    assert offline is not None, (
        f"{case}: the offline validator accepted it; the server said {server}"
    )
    assert server is not None, f"{case}: the server accepted it; offline said {offline}"
    assert any(error.field.startswith(field) for error in offline), (case, offline)
    assert field in server, (case, server)
