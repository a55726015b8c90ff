"""The kind cluster for e2e tests: found, never created here (`make kind-up` creates it).

Every reason to skip is checked in order and stated: a missing tool, a Docker client without an
engine, no kind cluster, a kubectl context that is not the kind cluster, NodeLab not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

CLUSTER = os.environ.get("KIND_CLUSTER", "nodelab")
CRD_NAME = "nodelabs.lab.nodelab.dev"


@dataclass(frozen=True)
class Kubectl:
    """kubectl against the kind cluster's context, in one namespace."""

    context: str
    namespace: str

    def run(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        """Run ``kubectl <args>`` and return its stdout; a failure raises with its stderr."""
        command = ["kubectl", "--context", self.context, "--namespace", self.namespace, *args]
        done = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
        return done.stdout

    def json(self, *args: str) -> Any:
        """``kubectl get ... -o json``, parsed."""
        return json.loads(self.run("get", *args, "-o", "json"))


def _quiet(command: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return subprocess.CompletedProcess(list(command), 1, "", str(error))


def kind_cluster_reason() -> str | None:
    """Why the kind e2e tests cannot run here, or None when they can."""
    for tool in ("docker", "kind", "kubectl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (the kind e2e tests need docker, kind and kubectl)"
    if _quiet(["docker", "info"]).returncode != 0:
        return "docker is installed but `docker info` fails: no Docker engine is running"
    clusters = _quiet(["kind", "get", "clusters"]).stdout.split()
    if CLUSTER not in clusters:
        return f"no kind cluster named {CLUSTER!r}: run `make kind-up` first"
    context = f"kind-{CLUSTER}"
    if _quiet(["kubectl", "--context", context, "get", "crd", CRD_NAME]).returncode != 0:
        return f"the NodeLab CRD is not installed in {context}: run `make kind-up` first"
    return None


@pytest.fixture(scope="session")
def kind_context() -> str:
    """The kubectl context of the kind cluster, once it is known to be usable."""
    reason = kind_cluster_reason()
    if reason is not None:
        pytest.skip(reason)
    return f"kind-{CLUSTER}"
