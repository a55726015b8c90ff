"""The operator's apply of phases 5 and 6 against an in-memory API (``FakeApi``: the real
``Cluster`` get, apply and delete over a dict of objects): the fault token is made once and read
back, never rotated; someone else's Secret is neither read nor overwritten; a slow pool the
spec drops is deleted, but only if the lab controls its Deployment."""

from __future__ import annotations

import base64
from typing import Any

import kopf
import pytest
from nodelab.kube import builders, cluster_api, handlers
from nodelab.kube.settings import OperatorSettings
from nodelab.model import names, spec

from tests.support.phase56_labs import balancing_lab, storm_lab
from tests.unit.test_operator_step import FakeApi

SETTINGS = OperatorSettings()
SECRETS = "/api/v1/namespaces/default/secrets"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def _owner(name: str) -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": "lab.nodelab.dev/v1alpha1",
            "kind": "NodeLab",
            "metadata": {"name": name, "namespace": "default", "uid": f"{name}-uid"},
        }
    )


def _apply(api: FakeApi, document: dict[str, Any]) -> dict[str, str]:
    lab = spec.parse_nodelab(document)
    return handlers._apply_children(lab, _owner(lab.name), SETTINGS, api)


def _token(api: FakeApi, name: str = "storm-lab") -> str | None:
    return builders.fault_token_of(api.objects.get(f"{SECRETS}/{names.fault_token_secret(name)}"))


def test_the_fault_token_is_made_once_and_read_back() -> None:
    api = FakeApi()
    outcomes = _apply(api, storm_lab())
    assert outcomes["storm-lab-fault-token"] == "created"
    token = _token(api)
    assert token and len(token) >= 32
    secret = api.objects[f"{SECRETS}/storm-lab-fault-token"]
    assert cluster_api.controller_uid(secret) == "storm-lab-uid"
    for _ in range(2):
        assert _apply(api, storm_lab())["storm-lab-fault-token"] == "patched"
        assert _token(api) == token, "never rotated by a reconcile"
    # The nodes and the load Job read that token from the mounted Secret.
    command = api.objects[f"{DEPLOYMENTS}/storm-lab-node"]["spec"]["template"]["spec"][
        "containers"
    ][0]["command"]
    assert command[command.index("--fault-token-file") + 1] == builders.FAULT_TOKEN_FILE


def test_someone_elses_secret_is_neither_read_nor_overwritten() -> None:
    api = FakeApi()
    theirs = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "storm-lab-fault-token", "namespace": "default", "uid": "x"},
        "data": {"token": base64.b64encode(b"their-secret").decode()},
    }
    api.objects[f"{SECRETS}/storm-lab-fault-token"] = dict(theirs)
    with pytest.raises(cluster_api.ChildConflict, match="Secret storm-lab-fault-token"):
        _apply(api, storm_lab())
    assert api.objects[f"{SECRETS}/storm-lab-fault-token"]["data"] == theirs["data"]
    assert f"{DEPLOYMENTS}/storm-lab-node" not in api.objects, "nothing after it is applied"
    patches = [p for m, p in api.requests if m == "PATCH" and p.startswith(SECRETS)]
    assert patches == []


def test_no_trigger_no_secret() -> None:
    api = FakeApi()
    _apply(api, balancing_lab())
    assert not [p for p in api.objects if p.startswith(SECRETS)]
    assert not [p for _, p in api.requests if p.startswith(SECRETS)], "no Secret is even read"


def test_a_dropped_slow_pool_is_deleted() -> None:
    api = FakeApi()
    outcomes = _apply(api, balancing_lab())
    assert outcomes["balancing-lab-node-slow"] == "created"
    assert api.objects[f"{DEPLOYMENTS}/balancing-lab-node"]["spec"]["replicas"] == 2
    without = balancing_lab()
    del without["spec"]["node"]["slowPool"]
    outcomes = _apply(api, without)
    assert outcomes["balancing-lab-node-slow"] == "deleted"
    assert f"{DEPLOYMENTS}/balancing-lab-node-slow" not in api.objects
    assert api.objects[f"{DEPLOYMENTS}/balancing-lab-node"]["spec"]["replicas"] == 3
    # Applied again: nothing more to delete.
    assert "balancing-lab-node-slow" not in _apply(api, without)


def test_someone_elses_slow_deployment_is_left_alone() -> None:
    api = FakeApi()
    without = balancing_lab()
    del without["spec"]["node"]["slowPool"]
    theirs = {"metadata": {"name": "balancing-lab-node-slow", "uid": "theirs"}}
    api.objects[f"{DEPLOYMENTS}/balancing-lab-node-slow"] = theirs
    outcomes = _apply(api, without)
    assert "balancing-lab-node-slow" not in outcomes
    assert api.objects[f"{DEPLOYMENTS}/balancing-lab-node-slow"] is theirs
    # A lab that wants its slow pool under that name: the conflict, as for any child.
    with pytest.raises(cluster_api.ChildConflict, match="Deployment balancing-lab-node-slow"):
        _apply(api, balancing_lab())
