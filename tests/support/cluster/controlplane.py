"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler, built from upstream (:mod:`.binaries`), with fresh certificates.

The API server runs with RBAC authorization, the default admission chain (Pod Security and the
ServiceAccount plugin among them) plus ``OwnerReferencesPermissionEnforcement``, which hardened
clusters enable, and signs ServiceAccount tokens with a key pair made for this run. Nothing here
imports pytest: tests and bench both use it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.cluster import binaries, pki, procs
from tests.support.cluster.pki import ClientCert
from tests.support.errors import SupportError

__all__ = ["ControlPlane", "ControlPlaneError", "free_local_port", "running_control_plane"]

SERVICE_CIDR = "10.96.0.0/16"
CLUSTER_DOMAIN = "cluster.local"
_READY_TIMEOUT_S = 120.0


class ControlPlaneError(SupportError):
    """A component did not start or did not become ready; the message carries its log tail."""


def free_local_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ControlPlane:
    """A running control plane: where it listens and the credentials to talk to it."""

    workdir: Path
    bin_dir: Path
    pki: pki.Pki
    port: int
    advertise_address: str
    kubeconfig: Path
    started: list[procs.Started] = field(default_factory=list)
    start_seconds: float = 0.0

    @property
    def server(self) -> str:
        """The API server's URL on loopback."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubectl_path(self) -> Path:
        """The kubectl built with the control plane (no version skew)."""
        return self.bin_dir / "kubectl"

    def ssl_context(self) -> ssl.SSLContext:
        """TLS as the admin: trusts this run's CA, presents the admin client certificate."""
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))
        return context

    def request(self, method: str, path: str, body: Any = None, content_type: str = "") -> Any:
        """One API call as the admin; the decoded JSON answer (urllib: no extra client)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type or "application/json"
        req = urllib.request.Request(self.server + path, data, headers, method=method)
        with urllib.request.urlopen(req, context=self.ssl_context(), timeout=30) as answer:
            raw = answer.read()
        return json.loads(raw) if raw.strip().startswith(b"{") else raw.decode()

    def kubeconfig_for(
        self,
        user: str,
        *,
        token: str | None = None,
        cert: ClientCert | None = None,
        server: str | None = None,
    ) -> dict[str, Any]:
        """A kubeconfig document for ``user`` with a bearer token or a client certificate."""
        credentials: dict[str, str] = {}
        if token is not None:
            credentials["token"] = token
        if cert is not None:
            credentials["client-certificate"] = str(cert.cert)
            credentials["client-key"] = str(cert.key)
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "nodelab-test",
                    "cluster": {
                        "server": server or self.server,
                        "certificate-authority": str(self.pki.ca_cert),
                    },
                }
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [
                {"name": "nodelab-test", "context": {"cluster": "nodelab-test", "user": user}}
            ],
            "current-context": "nodelab-test",
        }

    def check_running(self) -> None:
        """Raise ControlPlaneError naming any component that exited."""
        for component in self.started:
            if component.proc.poll() is not None:
                raise ControlPlaneError(
                    f"{component.name} exited with {component.proc.returncode}:\n{component.tail()}"
                )

    def stop(self) -> None:
        """Stop every component, newest first, and reap them."""
        for component in reversed(self.started):
            procs.stop(component)
        self.started.clear()


def _wait_http(plane: ControlPlane, path: str, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        plane.check_running()
        try:
            if plane.request("GET", path) == "ok":
                return
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.2)  # poll interval of a condition wait
    raise ControlPlaneError(f"{what} not ready after {timeout:.0f}s: {last}")


def _wait_etcd(etcd: procs.Started, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if etcd.proc.poll() is not None:
            raise ControlPlaneError(f"etcd exited with {etcd.proc.returncode}:\n{etcd.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if json.loads(answer.read()).get("health") == "true":
                    return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.1)  # poll interval of a condition wait
    raise ControlPlaneError(f"etcd not healthy after {timeout:.0f}s:\n{etcd.tail()}")


def _start(plane: ControlPlane, name: str, argv: list[str]) -> procs.Started:
    started = procs.start(name, argv, plane.workdir / "logs" / f"{name}.log")
    plane.started.append(started)
    return started


def start_control_plane(
    workdir: Path,
    *,
    advertise_address: str = "127.0.0.1",
    service_cidr: str = SERVICE_CIDR,
    extra_ips: tuple[str, ...] = (),
) -> ControlPlane:
    """Start etcd, kube-apiserver, kube-controller-manager and kube-scheduler; wait for /readyz.

    ``advertise_address`` is where pods reach the API (the ``kubernetes`` Service's endpoint);
    the serving certificate covers it, loopback, ``extra_ips`` and the Service's DNS names.
    Raises :class:`binaries.BinariesUnavailable` when the binaries are not built.
    """
    began = time.monotonic()
    bin_dir = binaries.find_binaries()
    if bin_dir is None:
        raise binaries.BinariesUnavailable(
            "the control plane is not built "
            f"(run `make cluster-bin`; cache: {binaries.cache_dir()})"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    ips = tuple(dict.fromkeys(("127.0.0.1", advertise_address, *extra_ips)))
    dns = (
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{CLUSTER_DOMAIN}",
    )
    credentials = pki.make_pki(workdir / "pki", ips=ips, dns_names=dns)
    port = free_local_port()
    plane = ControlPlane(
        workdir=workdir,
        bin_dir=bin_dir,
        pki=credentials,
        port=port,
        advertise_address=advertise_address,
        kubeconfig=workdir / "admin.kubeconfig",
    )
    plane.kubeconfig.write_text(
        yaml.safe_dump(plane.kubeconfig_for("admin", cert=credentials.admin))
    )
    try:
        etcd_port, peer_port = free_local_port(), free_local_port()
        etcd = _start(
            plane,
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=nodelab-test",
                f"--data-dir={workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=nodelab-test=http://127.0.0.1:{peer_port}",
                "--listen-metrics-urls=",
                # A test cluster's data dies with it: skip fsync, as envtest does.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        _wait_etcd(etcd, etcd_port, 30.0)
        _start(
            plane,
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--advertise-address={advertise_address}",
                f"--service-cluster-ip-range={service_cidr}",
                f"--client-ca-file={credentials.ca_cert}",
                f"--tls-cert-file={credentials.serving.cert}",
                f"--tls-private-key-file={credentials.serving.key}",
                f"--service-account-key-file={credentials.service_account_pub}",
                f"--service-account-signing-key-file={credentials.service_account_key}",
                f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
                "--authorization-mode=RBAC",
                "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
                "--allow-privileged=false",
                "--profiling=false",
                f"--cert-dir={workdir / 'apiserver-certs'}",
            ],
        )
        _wait_http(plane, "/readyz", "kube-apiserver", _READY_TIMEOUT_S)
        common = [
            f"--kubeconfig={plane.kubeconfig}",
            f"--authentication-kubeconfig={plane.kubeconfig}",
            f"--authorization-kubeconfig={plane.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--profiling=false",
        ]
        _start(
            plane,
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                *common,
                f"--secure-port={free_local_port()}",
                f"--service-account-private-key-file={credentials.service_account_key}",
                f"--root-ca-file={credentials.ca_cert}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={service_cidr}",
                f"--cert-dir={workdir / 'kcm-certs'}",
            ],
        )
        _start(
            plane,
            "kube-scheduler",
            [
                str(bin_dir / "kube-scheduler"),
                *common,
                f"--secure-port={free_local_port()}",
            ],
        )
        plane.check_running()
    except BaseException:
        plane.stop()
        raise
    plane.start_seconds = time.monotonic() - began
    return plane


@contextlib.contextmanager
def running_control_plane(workdir: Path, **kwargs: Any) -> Iterator[ControlPlane]:
    """:func:`start_control_plane`, stopped and reaped on exit whatever happens."""
    plane = start_control_plane(workdir, **kwargs)
    try:
        yield plane
    finally:
        plane.stop()
