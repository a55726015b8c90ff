"""``Cluster.connect`` reads $KUBECONFIG as kubectl and kopf do: a list of files, merged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from nodelab.kube import cluster_api


def test_a_kubeconfig_path_list_is_merged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clusters, contexts = tmp_path / "clusters", tmp_path / "contexts"
    clusters.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "lab", "cluster": {"server": "http://127.0.0.1:6443"}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
    }))  # fmt: skip
    # The current context lives in the second file, its cluster in the first.
    contexts.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "me"}}],
    }))  # fmt: skip
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", f"{clusters}{os.pathsep}{contexts}")
    cluster = cluster_api.Cluster.connect()
    try:
        assert cluster._api.configuration.host == "http://127.0.0.1:6443"
    finally:
        cluster.close()
