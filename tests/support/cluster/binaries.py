"""The control plane's binaries: built from the upstream Go modules, cached outside the repo.

``tests/cluster/go`` is a Go module that only pins upstream code: kube-apiserver,
kube-controller-manager, kube-scheduler and kubectl from ``k8s.io/kubernetes``, and etcd from
``go.etcd.io/etcd/server/v3``. One ``go build`` of all five writes them into
``$NODELAB_CACHE/kube-<version>/bin`` (default ``~/.cache/nodelab``); a stamp holding the hash
of ``go.sum`` lets the next run reuse them, and a change of the pinned versions rebuilds.

``python -m tests.support.cluster.binaries`` (``make cluster-bin``) builds or reuses them and
prints the directory; without Go it says so and exits 0, and the cluster tier skips.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.errors import Unavailable

__all__ = [
    "ETCD_VERSION",
    "GO_MODULE",
    "KUBE_VERSION",
    "NAMES",
    "BinariesUnavailable",
    "cache_dir",
    "ensure_binaries",
    "find_binaries",
    "main",
]

KUBE_VERSION = "v1.37.2"
ETCD_VERSION = "v3.7.0"  # the etcd release k8s.io/kubernetes v1.37.2 requires
GO_MODULE = Path(__file__).resolve().parents[2] / "cluster" / "go"
_PACKAGES = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    "etcd": "./etcd",
}
NAMES = tuple(_PACKAGES)
_STAMP = ".built-from"


class BinariesUnavailable(Unavailable):
    """The binaries are not built and cannot be built here; the message says why."""


def cache_dir() -> Path:
    """Where built binaries live: ``$NODELAB_CACHE`` or ``~/.cache/nodelab``, per version."""
    root = os.environ.get("NODELAB_CACHE") or Path.home() / ".cache" / "nodelab"
    return Path(root) / f"kube-{KUBE_VERSION}" / "bin"


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "etcd/main.go"):
        digest.update((GO_MODULE / name).read_bytes())
    return f"{KUBE_VERSION} {ETCD_VERSION} {digest.hexdigest()[:16]}"


def find_binaries() -> Path | None:
    """The cache directory if every binary is there and was built from the current pins."""
    directory = cache_dir()
    stamp = directory / _STAMP
    if not stamp.is_file() or stamp.read_text().strip() != _fingerprint():
        return None
    if all((directory / name).is_file() for name in NAMES):
        return directory
    return None


def _ldflags() -> str:
    major, minor, _patch = KUBE_VERSION.lstrip("v").split(".")
    base = "k8s.io/component-base/version"
    stamps = {
        "gitVersion": KUBE_VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
    }
    return " ".join(["-s", "-w", *(f"-X {base}.{key}={value}" for key, value in stamps.items())])


def ensure_binaries(say: Callable[[str], None] = print) -> Path:
    """Build the binaries unless the cache holds them; the directory that holds them."""
    found = find_binaries()
    if found is not None:
        return found
    go = shutil.which("go")
    if go is None:
        raise BinariesUnavailable("Go is not installed (the cluster tier builds kube-apiserver)")
    target = cache_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="bin-", dir=target.parent))
    say(f"building Kubernetes {KUBE_VERSION} and etcd {ETCD_VERSION} into {target}")
    say(
        "  (a cold build compiles ~3,000 packages: tens of minutes on 2 cores; later runs reuse it)"
    )
    started = time.monotonic()
    command = [
        go,
        "build",
        "-v",
        "-trimpath",
        "-buildvcs=false",
        "-ldflags",
        _ldflags(),
        "-o",
        str(staging) + os.sep,
        *_PACKAGES.values(),
    ]
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": ""}
    process = subprocess.Popen(
        command,
        cwd=GO_MODULE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    compiled, tail = 0, list[str]()
    for line in process.stdout:
        tail = [*tail[-40:], line.rstrip()]
        if line.startswith(("#", "go: ")) or " " in line.strip():
            continue  # messages, not package names
        compiled += 1
        if compiled % 250 == 0:
            say(f"  {compiled} packages compiled, {time.monotonic() - started:.0f}s")
    if process.wait() != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BinariesUnavailable("go build failed:\n" + "\n".join(tail))
    (staging / _STAMP).write_text(_fingerprint() + "\n")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    say(f"built {', '.join(NAMES)} in {time.monotonic() - started:.0f}s ({compiled} packages)")
    return target


def main(argv: list[str] | None = None) -> int:
    """``make cluster-bin``: build or reuse; 0 also when Go is missing (the tier then skips)."""
    del argv
    started = time.monotonic()
    found = find_binaries()
    if found is not None:
        print(f"cluster binaries: {found} (cached, Kubernetes {KUBE_VERSION})")
        return 0
    try:
        directory = ensure_binaries()
    except BinariesUnavailable as exc:
        if shutil.which("go") is None:
            print(f"cluster binaries: not built: {exc}; the cluster tier will skip")
            return 0
        print(f"cluster binaries: {exc}", file=sys.stderr)
        return 1
    print(f"cluster binaries: {directory} ({time.monotonic() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
