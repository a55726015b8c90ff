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


def _with_each(changes: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = copy.deepcopy(BASE)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        target = document
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return document


# Phase 5's load: a time-bounded open loop, which spec.trigger needs.
OPEN_LOOP = {"rate": 5, "durationSeconds": 20}


def _triggered(**trigger: Any) -> dict[str, Any]:
    return _with_each({"spec.load": dict(OPEN_LOOP), "spec.trigger": trigger})


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
    # Phase 5: protection, trigger, retry.
    (
        "queue-negative",
        _with("spec.node.protection", {"maxQueue": -1}),
        "spec.node.protection.maxQueue",
    ),
    (
        "burst-without-rate",
        _with("spec.node.protection", {"rateBurst": 5}),
        "spec.node.protection.rateBurst",
    ),
    (
        "trigger-closed-loop",
        _with("spec.trigger", {"durationSeconds": 5, "mode": "fail"}),
        "spec.trigger",
    ),
    (
        "trigger-ends-with-the-load",
        _triggered(startSeconds=15, durationSeconds=5, mode="fail"),
        "spec.trigger.durationSeconds",
    ),
    (
        "trigger-slow-without-extra",
        _triggered(durationSeconds=5, mode="slow"),
        "spec.trigger.extraMillis",
    ),
    (
        "trigger-fail-with-extra",
        _triggered(durationSeconds=5, mode="fail", extraMillis=100),
        "spec.trigger.extraMillis",
    ),
    (
        "trigger-status-502",
        _triggered(durationSeconds=5, mode="fail", status=502),
        "spec.trigger.status",
    ),
    ("trigger-no-mode", _triggered(durationSeconds=5), "spec.trigger.mode"),
    (
        "retry-none-with-attempts",
        _with("spec.load.retry", {"maxAttempts": 3}),
        "spec.load.retry.maxAttempts",
    ),
    (
        "retry-backoff-one-attempt",
        _with("spec.load.retry", {"kind": "backoff"}),
        "spec.load.retry.maxAttempts",
    ),
    (
        "retry-cap-below-base",
        _with("spec.load.retry", {"kind": "backoff", "maxAttempts": 3, "capMillis": 50}),
        "spec.load.retry.capMillis",
    ),
    (
        "retry-budget-above-one",
        _with("spec.load.retry", {"budgetRatio": 1.5}),
        "spec.load.retry.budgetRatio",
    ),
    (
        "retry-breaker-ratio-zero",
        _with("spec.load.retry", {"breaker": {"failureRatio": 0}}),
        "spec.load.retry.breaker.failureRatio",
    ),
    ("retry-unknown-key", _with("spec.load.retry", {"jitter": "full"}), "spec.load.retry.jitter"),
    # Phase 6: balancing, slow pool.
    ("balancing-unknown", _with("spec.load.balancing", "least-conn"), "spec.load.balancing"),
    (
        "slow-pool-all-slow",
        _with("spec.node.slowPool", {"replicas": 1, "serviceFactor": 2}),
        "spec.node.slowPool.replicas",
    ),
    (
        "slow-pool-not-slow",
        _with_each({"spec.node.replicas": 3, "spec.node.slowPool": {"replicas": 1}}),
        "spec.node.slowPool",
    ),
    (
        "slow-pool-faster",
        _with_each({"spec.node.replicas": 3, "spec.node.slowPool": {"serviceFactor": 0.5}}),
        "spec.node.slowPool.serviceFactor",
    ),
]
GOOD: list[tuple[str, dict[str, Any]]] = [
    (path.name, yaml.safe_load(path.read_text())) for path in PHASES
] + [
    (
        "minimal",
        {k: BASE[k] for k in ("apiVersion", "kind", "metadata")}
        | {"spec": {"node": {}, "load": {}}},
    ),
    (
        "retry-storm",
        _with_each(
            {
                "spec.node.protection": {"maxQueue": 4, "rateLimit": 2.5, "rateBurst": 3},
                "spec.load": {
                    **OPEN_LOOP,
                    "retry": {
                        "kind": "backoff",
                        "maxAttempts": 3,
                        "budgetRatio": 0.1,
                        "honorRetryAfter": True,
                        "breaker": {"minCalls": 10},
                    },
                },
                # Whole numbers in number fields: CEL doubles on the server.
                "spec.trigger": {
                    "startSeconds": 5,
                    "durationSeconds": 10,
                    "mode": "slow",
                    "extraMillis": 800,
                },
            }
        ),
    ),
    ("fail-window", _triggered(startSeconds=2.5, durationSeconds=3, mode="fail", status=500)),
    (
        "fast-and-slow",
        _with_each(
            {
                "spec.node.replicas": 3,
                "spec.node.slowPool": {"replicas": 1, "serviceFactor": 3, "extraMillis": 20},
                "spec.load.balancing": "peak-ewma",
            }
        ),
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
