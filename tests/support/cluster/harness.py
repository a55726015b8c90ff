"""One test cluster: the control plane (:mod:`.controlplane`) and the test kubelet
(:mod:`.kubelet`) with its nodes, started together and stopped together.

``running_cluster`` is what a pytest session fixture or a bench row wraps; nothing here
imports pytest. ``Cluster.kubectl`` runs the kubectl built with the control plane.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cluster import binaries, controlplane, network, procs
from tests.support.cluster.api import Api
from tests.support.errors import SupportError, Unavailable

__all__ = [
    "Cluster",
    "ClusterUnavailable",
    "KubectlError",
    "running_cluster",
    "unavailable_reason",
]

ROOT = Path(__file__).resolve().parents[3]
IMAGE = "nodelab:dev"
# The test kubelet's folder in a cluster's workdir: per pod, its volumes and container logs.
KUBELET_DIR = "kubelet"


def _outermost(paths: list[Path]) -> list[str]:
    """``paths`` without those inside another of them."""
    kept = [p for p in paths if not any(o != p and o in p.parents for o in paths)]
    return sorted({str(p) for p in kept})


def image_table(dockerfile: Path = ROOT / "Dockerfile") -> dict[str, Any]:
    """What the test kubelet knows of ``nodelab:dev``, read from the Dockerfile that builds it:
    the entrypoint (here: this virtualenv's ``nodelab``), ENV, USER and the account it adds."""
    text = dockerfile.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    user, passwd, group = 0, "", ""
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "ENV":
            env.update(dict(word.split("=", 1) for word in words[1:] if "=" in word))
        elif words[0] == "USER":
            user = int(words[1].split(":")[0])
        match = re.search(r"groupadd --gid (\d+) (\S+)", line)
        if match:
            group = f"{match.group(2)}:x:{match.group(1)}:"
        match = re.search(
            r"useradd --uid (\d+) --gid (\d+) .*?--home-dir (\S+).*?--shell (\S+) (\S+)", line
        )
        if match:
            uid, gid, home, shell, name = match.groups()
            passwd = f"{name}:x:{uid}:{gid}::{home}:{shell}"
    entrypoint = [str(Path(sys.executable).parent / "nodelab")]
    return {
        IMAGE: {
            "entrypoint": entrypoint,
            "cmd": ["--help"],
            "user": user,
            "env": env,
            "passwd": passwd,
            "group": group,
            "paths": _outermost(
                [ROOT, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()]
            ),
        }
    }


class ClusterUnavailable(Unavailable):
    """A test cluster cannot run here; the message says why (tests skip with it)."""


class KubectlError(SupportError):
    """kubectl exited non-zero; ``stderr`` holds what it said."""

    def __init__(self, argv: Sequence[str], code: int, stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(argv)} exited {code}: {stderr.strip()}")
        self.code = code
        self.stderr = stderr


def unavailable_reason() -> str | None:
    """Why a test cluster cannot run here, or None."""
    if binaries.find_binaries() is None:
        if shutil.which("go") is None:
            return "Go is not installed, so the control plane cannot be built"
        return f"the control plane is not built: run `make cluster-bin` ({binaries.cache_dir()})"
    return network.network_unavailable_reason()


@dataclass
class Cluster:
    """A running test cluster."""

    plane: controlplane.ControlPlane
    kubelet: procs.Started
    nodes: int
    cpu: str

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig."""
        return self.plane.kubeconfig

    def api(self) -> Api:
        """The admin's JSON client."""
        admin = self.plane.pki.admin
        return Api(self.plane.server, str(self.plane.pki.ca_cert), str(admin.cert), str(admin.key))

    def kubectl(
        self,
        *argv: str,
        stdin: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the admin (or with ``kubeconfig``); KubectlError when it fails."""
        self.check_running()
        result = subprocess.run(
            [
                str(self.plane.kubectl_path),
                f"--kubeconfig={kubeconfig or self.kubeconfig}",
                *argv,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise KubectlError(argv, result.returncode, result.stderr)
        return result

    def get(self, *argv: str) -> Any:
        """``kubectl get ... -o json``, decoded."""
        return json.loads(self.kubectl("get", *argv, "-o", "json").stdout)

    def pod_log(self, namespace: str, pod: str, lines: int = 40) -> str:
        """The last ``lines`` of what a pod's containers wrote, from the test kubelet's files
        (it serves no ``kubectl logs``); empty when the pod never started here."""
        pods = self.plane.workdir / KUBELET_DIR / "pods"
        texts = [
            f"== {log.parent.name}/{log.name}\n"
            + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            for log in sorted(pods.glob(f"{namespace}_{pod}_*/*.log"))
        ]
        return "\n".join(texts)

    def check_running(self) -> None:
        """Raise ClusterUnavailable naming a component that died."""
        try:
            self.plane.check_running()
        except controlplane.ControlPlaneError as exc:
            raise ClusterUnavailable(str(exc)) from exc
        if self.kubelet.proc.poll() is not None:
            raise ClusterUnavailable(
                f"the test kubelet exited with {self.kubelet.proc.returncode}:\n"
                f"{self.kubelet.tail()}"
            )

    def stop(self) -> None:
        """Stop the kubelet (and every pod it runs), then the control plane."""
        procs.stop(self.kubelet, grace=20.0)
        self.plane.stop()


def _wait_nodes_ready(cluster: Cluster, timeout: float) -> None:
    api = cluster.api()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.check_running()
        nodes = api.call("GET", "/api/v1/nodes").get("items", [])
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        account = api.get("/api/v1/namespaces/default/serviceaccounts/default")
        if len(ready) >= cluster.nodes and account is not None:
            return
        time.sleep(0.2)  # poll interval of a condition wait
    raise ClusterUnavailable(f"nodes not Ready after {timeout:.0f}s:\n{cluster.kubelet.tail()}")


def start_cluster(
    workdir: Path, *, nodes: int = 3, cpu: str = "4", memory: str = "16Gi"
) -> Cluster:
    """Start a control plane and a test kubelet with ``nodes`` nodes of ``cpu`` CPUs each."""
    reason = unavailable_reason()
    if reason:
        raise ClusterUnavailable(reason)
    # The pod network's bridge address is where pods reach the API; make it known up front so
    # the serving certificate and the ``kubernetes`` Service endpoint carry it.
    pods = network.PodNetwork(subnet=network.PodNetwork.free_subnet())
    plane = controlplane.start_control_plane(
        workdir,
        advertise_address=pods.gateway,
        service_cidr=pods.service_cidr,
        extra_ips=(pods.api_service_ip,),
    )
    try:
        admin = plane.pki.admin
        images = workdir / "images.json"
        images.write_text(json.dumps(image_table(), indent=1))
        kubelet = procs.start(
            "test-kubelet",
            [
                sys.executable,
                "-m",
                "tests.support.cluster.kubelet",
                f"--server={plane.server}",
                f"--ca={plane.pki.ca_cert}",
                f"--cert={admin.cert}",
                f"--key={admin.key}",
                f"--nodes={nodes}",
                f"--cpu={cpu}",
                f"--memory={memory}",
                f"--images={images}",
                f"--workdir={workdir / KUBELET_DIR}",
                f"--subnet={pods.subnet}",
            ],
            workdir / "logs" / "test-kubelet.log",
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        )
    except BaseException:
        plane.stop()
        raise
    cluster = Cluster(plane=plane, kubelet=kubelet, nodes=nodes, cpu=cpu)
    try:
        _wait_nodes_ready(cluster, 60.0)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextlib.contextmanager
def running_cluster(workdir: Path | None = None, **kwargs: Any) -> Iterator[Cluster]:
    """:func:`start_cluster` in ``workdir`` (a temporary directory by default), always stopped."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="nodelab-cluster-"))
            )
        cluster = start_cluster(workdir, **kwargs)
        stack.callback(cluster.stop)
        yield cluster
