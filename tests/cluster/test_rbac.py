"""The shipped ClusterRole is enough (every other test runs under it); one verb less, and the
operator says so in the lab's Events instead of hanging silently."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from tests.cluster.conftest import ROOT, eventually, install
from tests.cluster.test_phases import PHASES, completed, scaled
from tests.support.cluster.harness import Cluster

ROLE = ROOT / "manifests" / "rbac" / "cluster_role.yaml"


@pytest.fixture
def without_deployment_create(cluster: Cluster) -> Iterator[None]:
    """The shipped ClusterRole minus `create` on deployments; restored afterwards."""
    role = yaml.safe_load(ROLE.read_text())
    for rule in role["rules"]:
        if "deployments" in rule["resources"]:
            rule["verbs"] = [verb for verb in rule["verbs"] if verb != "create"]
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(role))
    try:
        yield
    finally:
        install(cluster)


def test_a_missing_verb_is_reported_and_the_lab_recovers_when_it_is_granted(
    cluster: Cluster, namespace: str, without_deployment_create: None
) -> None:
    name = "forbidden"
    document = scaled(PHASES[0])
    document["metadata"]["name"] = name
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(document))

    def refusal() -> str | None:
        events = cluster.get("events", "-n", namespace, "--field-selector",
                             f"involvedObject.name={name}")["items"]  # fmt: skip
        text = " ".join(e.get("message", "") for e in events)
        return text if "forbidden" in text.lower() else None

    text = eventually(refusal, timeout=60, what="an Event naming the refusal")
    assert "deployments" in text and "create" in text, text
    assert not cluster.get("deployments", "-n", namespace)["items"]

    install(cluster)  # the verb is back: the operator's retry goes through
    eventually(lambda: completed(cluster, namespace, name, 1), timeout=120, what="Completed")
    print(json.dumps(text)[:300])
