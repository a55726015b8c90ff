"""Which children wake the reconcile step, whose child each is, and when a lab wants a step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nodelab.kube import builders, reconcile
from nodelab.kube.settings import OperatorSettings
from nodelab.model import names, spec

from tests.support.phase56_labs import balancing_lab

PHASES = sorted((Path(__file__).parents[2] / "manifests" / "phases").glob("*.yaml"))
WATCHED = {watch.plural: watch for watch in reconcile.WATCHES}


@pytest.fixture(params=PHASES, ids=lambda p: p.stem)
def lab(request: pytest.FixtureRequest) -> spec.NodeLab:
    return spec.load_phase_file(request.param)


def test_the_watched_kinds_and_their_server_side_selectors() -> None:
    assert {(w.group, w.version, w.plural): w.selector for w in reconcile.WATCHES} == {
        ("apps", "v1", "deployments"): "app.kubernetes.io/component=node,"
        "app.kubernetes.io/instance,app.kubernetes.io/managed-by=nodelab-operator,"
        "app.kubernetes.io/name=nodelab-node",
        # Both pools' pods: the fast ones' name and the slow pool's (phase 6).
        ("", "v1", "pods"): "app.kubernetes.io/component=node,app.kubernetes.io/instance,"
        "app.kubernetes.io/name in (nodelab-node,nodelab-node-slow)",
        ("batch", "v1", "jobs"): "app.kubernetes.io/component=load,app.kubernetes.io/instance,"
        "app.kubernetes.io/managed-by=nodelab-operator,app.kubernetes.io/name=nodelab-load",
    }


def test_every_child_that_moves_a_lab_is_selected_by_its_watch(lab: spec.NodeLab) -> None:
    # The builders' own labels: a rename on either side would blind the watch silently.
    _assert_watched(lab)


def _assert_watched(lab: spec.NodeLab) -> None:
    settings = OperatorSettings()
    children = builders.build_children(lab, settings, fault_token="token")
    deployments = [child for child in children if child["kind"] == "Deployment"]
    assert len(deployments) == (2 if lab.spec.node.slow_pool else 1)
    job = builders.build_load_job(lab, settings)
    assert WATCHED["jobs"].matches(job["metadata"]["labels"])
    for deployment in deployments:
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert WATCHED["deployments"].matches(deployment["metadata"]["labels"])
        assert WATCHED["pods"].matches(pod_labels)
        # A node pod says which lab it is of (its controller is a ReplicaSet).
        assert reconcile.owning_lab({"metadata": {"labels": pod_labels}}) == lab.name
        # The load Job's pods are not node pods, and node pods are not load Jobs.
        assert not WATCHED["pods"].matches(job["spec"]["template"]["metadata"]["labels"])
        assert not WATCHED["jobs"].matches(pod_labels)


def test_the_slow_pool_and_its_pods_are_watched() -> None:
    _assert_watched(spec.parse_nodelab(balancing_lab()))
    assert WATCHED["pods"].matches(
        {
            names.NAME_LABEL: "nodelab-node-slow",
            names.INSTANCE_LABEL: "x",
            names.COMPONENT_LABEL: "node",
        }
    )
    # Another app's pods with the standard labels are not node pods.
    assert not WATCHED["pods"].matches(
        {
            names.NAME_LABEL: "nodelab-nodes",
            names.INSTANCE_LABEL: "x",
            names.COMPONENT_LABEL: "node",
        }
    )


@pytest.mark.parametrize(
    ("plural", "labels"),
    [
        # Someone's Deployment with the lab's instance label: not the operator's to watch.
        ("deployments", {names.INSTANCE_LABEL: "scaling-lab"}),
        # A node pod of no lab at all.
        ("pods", {names.NAME_LABEL: "nodelab-node", names.COMPONENT_LABEL: "node"}),
        # A Job with the lab's labels but not made by the operator (no managed-by).
        (
            "jobs",
            {
                names.NAME_LABEL: "nodelab-load",
                names.INSTANCE_LABEL: "scaling-lab",
                names.COMPONENT_LABEL: "load",
            },
        ),
        ("jobs", None),
    ],
)
def test_objects_without_the_labels_are_not_watched(
    plural: str, labels: dict[str, str] | None
) -> None:
    assert not WATCHED[plural].matches(labels)


def _ref(**overrides: Any) -> dict[str, Any]:
    ref = {
        "apiVersion": "lab.nodelab.dev/v1alpha1",
        "kind": "NodeLab",
        "name": "scaling-lab",
        "uid": "u-1",
        "controller": True,
    }
    return {**ref, **overrides}


@pytest.mark.parametrize(
    ("metadata", "lab"),
    [
        ({"ownerReferences": [_ref()]}, "scaling-lab"),
        # The controller names the lab even if the labels say otherwise.
        (
            {"ownerReferences": [_ref()], "labels": {names.INSTANCE_LABEL: "other"}},
            "scaling-lab",
        ),
        # A node pod: its controller is the ReplicaSet; its instance label names the lab.
        (
            {
                "ownerReferences": [_ref(apiVersion="apps/v1", kind="ReplicaSet", name="x-7f")],
                "labels": {names.INSTANCE_LABEL: "scaling-lab"},
            },
            "scaling-lab",
        ),
        # A NodeLab of another API group is not ours; nor is a non-controller reference.
        ({"ownerReferences": [_ref(apiVersion="example.com/v1")]}, None),
        ({"ownerReferences": [_ref(controller=False)]}, None),
        ({}, None),
    ],
)
def test_owning_lab(metadata: dict[str, Any], lab: str | None) -> None:
    assert reconcile.owning_lab({"metadata": metadata}) == lab


def _valid(state: str = "True") -> dict[str, Any]:
    return {"type": "SpecValid", "status": state, "reason": "Valid", "message": ""}


@pytest.mark.parametrize(
    ("meta", "current", "wanted"),
    [
        ({"generation": 2}, {"observedGeneration": 2, "conditions": [_valid()]}, True),
        # Not taken in yet by the change handlers, or never.
        ({"generation": 3}, {"observedGeneration": 2, "conditions": [_valid()]}, False),
        ({"generation": 1}, {}, False),
        # An invalid spec (the change handlers reported it), or a lab being deleted.
        ({"generation": 2}, {"observedGeneration": 2, "conditions": [_valid("False")]}, False),
        (
            {"generation": 2, "deletionTimestamp": "2025-01-01T00:00:00Z"},
            {"observedGeneration": 2, "conditions": [_valid()]},
            False,
        ),
    ],
)
def test_wants_progress(meta: dict[str, Any], current: dict[str, Any], wanted: bool) -> None:
    assert reconcile.wants_reconcile(meta, current) is wanted
