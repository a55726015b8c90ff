"""Pod networking for the test kubelet: a network namespace and a veth per pod on one bridge.

Each pod gets its own network stack (so every node pod can listen on 0.0.0.0:8080, as in a
cluster) with an address on a /24 of 10.244.0.0/16 (kind's pod range) that lives only on a
bridge this kit creates. There is no forwarding and no NAT: a pod reaches the other pods and
the bridge's own address (where the cluster DNS and the API server's forwarder listen), and
nothing beyond this machine. ``ip netns exec`` mounts ``/etc/netns/<name>/resolv.conf`` over
``/etc/resolv.conf`` for the pod, so its resolver asks the cluster DNS, with the search path a
kubelet writes. Every name carries the owner's PID; a later run removes what a killed run left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.errors import Unavailable

__all__ = ["NetworkUnavailable", "PodNetwork", "network_unavailable_reason"]

_NETNS_ETC = Path("/etc/netns")
_PREFIX = "nodelab-"


class NetworkUnavailable(Unavailable):
    """Pod network namespaces cannot be made here (not root, or no iproute2)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def network_unavailable_reason() -> str | None:
    """Why pod network namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "the test kubelet needs root for pod network namespaces"
    if shutil.which("ip") is None or shutil.which("setpriv") is None:
        return "the test kubelet needs iproute2 (ip) and util-linux (setpriv)"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(name: str, prefix: str) -> int | None:
    digits = name[len(prefix) :].split("-")[0].split("x")[0]
    return int(digits) if digits.isdigit() else None


def clean_stale() -> list[str]:
    """Remove namespaces, bridges and /etc/netns entries of runs whose owner PID is gone."""
    removed = []
    listing = _ip("netns", "list", check=False).stdout.split()
    for name in listing:
        owner = _owner(name, _PREFIX) if name.startswith(_PREFIX) else None
        if owner is not None and not _alive(owner):
            _ip("netns", "del", name, check=False)
            removed.append(name)
    if _NETNS_ETC.is_dir():
        for entry in _NETNS_ETC.iterdir():
            owner = _owner(entry.name, _PREFIX) if entry.name.startswith(_PREFIX) else None
            if owner is not None and not _alive(owner):
                shutil.rmtree(entry, ignore_errors=True)
    for line in _ip("-o", "link", "show", "type", "bridge", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        owner = _owner(name, "nlbr") if name.startswith("nlbr") else None
        if owner is not None and not _alive(owner):
            _ip("link", "del", name, check=False)
            removed.append(name)
    return removed


def _used_subnets() -> set[int]:
    used = set()
    for word in _ip("-o", "-4", "addr", "show", check=False).stdout.split():
        if word.startswith("10.244."):
            used.add(int(word.split(".")[2]))
    return used


@dataclass
class PodNetwork:
    """One bridge and the pod namespaces on it; ``close`` removes them all."""

    owner: int = field(default_factory=os.getpid)
    subnet: int = 0
    bridge: str = ""
    _next_host: int = 2
    _pods: dict[str, str] = field(default_factory=dict)  # netns -> address

    @property
    def gateway(self) -> str:
        """The bridge's address: what pods reach for DNS and the API."""
        return f"10.244.{self.subnet}.1"

    @property
    def service_cidr(self) -> str:
        """The Service IP range of this cluster (one /24 per pod /24, so runs never clash)."""
        return f"10.96.{self.subnet}.0/24"

    @property
    def api_service_ip(self) -> str:
        """The ``kubernetes`` Service's ClusterIP: the range's first address."""
        return f"10.96.{self.subnet}.1"

    @staticmethod
    def free_subnet() -> int:
        """A /24 of 10.244.0.0/16 that no interface on this machine uses yet."""
        clean_stale()
        used = _used_subnets()
        return next(k for k in range(1, 255) if k not in used)

    def open(self, subnet: int | None = None) -> None:
        """Create the bridge, with the gateway and the ``kubernetes`` Service's address."""
        reason = network_unavailable_reason()
        if reason:
            raise NetworkUnavailable(reason)
        self.subnet = subnet if subnet is not None else self.free_subnet()
        self.bridge = f"nlbr{self.owner}"
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            # What kube-proxy does for the one Service pods use by its ClusterIP: here the
            # address is local to the bridge, and the kubelet forwards it to the API server.
            _ip("addr", "add", f"{self.api_service_ip}/32", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        except subprocess.CalledProcessError as exc:
            self.close()
            raise NetworkUnavailable(f"cannot create the pod bridge: {exc.stderr.strip()}") from exc

    def add_pod(
        self, hostname: str, search: list[str], files: dict[str, str] | None = None
    ) -> tuple[str, str]:
        """A new namespace with a veth on the bridge; (namespace name, pod address).

        ``files`` holds more files the pod sees in /etc (its image's passwd and group)."""
        index = self._next_host
        if index > 254:
            raise NetworkUnavailable("the pod /24 is full")
        self._next_host += 1
        netns = f"{_PREFIX}{self.owner}-{index}"
        address = f"10.244.{self.subnet}.{index}"
        host_end = f"nlv{self.owner}x{index}"
        etc = _NETNS_ETC / netns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(
            f"search {' '.join(search)}\nnameserver {self.gateway}\noptions ndots:5\n"
        )
        (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n{address}\t{hostname}\n")
        (etc / "hostname").write_text(f"{hostname}\n")
        for name, text in (files or {}).items():
            (etc / name).write_text(text)
        _ip("netns", "add", netns)
        self._pods[netns] = address
        _ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", netns)
        _ip("link", "set", host_end, "master", self.bridge, "up")
        _ip("-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        _ip("-n", netns, "route", "add", "default", "via", self.gateway)
        return netns, address

    def remove_pod(self, netns: str) -> None:
        """Delete a pod's namespace (its veth goes with it) and its /etc/netns files."""
        self._pods.pop(netns, None)
        _ip("netns", "del", netns, check=False)
        shutil.rmtree(_NETNS_ETC / netns, ignore_errors=True)

    def close(self) -> None:
        """Remove every pod namespace and the bridge."""
        for netns in list(self._pods):
            self.remove_pod(netns)
        if self.bridge:
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("link", "del", self.bridge, check=False)
