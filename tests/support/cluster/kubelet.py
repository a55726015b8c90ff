"""The test kubelet: the one stand-in of the cluster tier.

It registers Node objects (sized like kind workers on a laptop), renews their leases, and runs
the pods the real scheduler binds to them as local processes, the way a kubelet would:

* the container's command and args (or the image's entrypoint, from a small image table), its
  env with downward-API fields and ``$(VAR)`` references resolved, plus ``KUBERNETES_SERVICE_*``;
* its own network namespace and address (:mod:`.network`), resolver pointed at the cluster DNS;
* a private mount namespace: ``emptyDir`` and ``secret`` (read-only) volumes, the ServiceAccount
  token (a bound token from the real TokenRequest API) at
  ``/var/run/secrets/kubernetes.io/serviceaccount``, a read-only root when the container asks for
  one, and the user and groups of its securityContext;
* pod status: Running, Ready from the startup and readiness probes, restarts with back-off,
  Succeeded or Failed with the exit code for pods that do not restart;
* graceful deletion: SIGTERM, SIGKILL past the grace period, then the final delete.

It also forwards the bridge's address to the API server (what the ``kubernetes`` Service and
kube-proxy give a pod) and serves the cluster DNS. Not done: images (one table maps image names
to local entrypoints), liveness restarts, logs through the API (``kubectl logs``), resource
limits (the scheduler counts requests; processes share this machine's cores).

Run as ``python -m tests.support.cluster.kubelet --server ... --ca ... --cert ... --key ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import http.client
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.timestamps import rfc3339
from tests.support.cluster import network
from tests.support.cluster.api import STRATEGIC, Api, ApiError
from tests.support.cluster.dns import ClusterDns

__all__ = ["Image", "Kubelet", "main", "node_names"]

log = logging.getLogger("test-kubelet")
_TICK_S = 0.2
_LEASE_RENEW_S = 10.0
_LEASE_DURATION_S = 40
_SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_BACKOFF_CAP_S = 10.0
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def node_names(count: int) -> list[str]:
    """kind's worker names: nodelab-worker, nodelab-worker2, ..."""
    return ["nodelab-worker" + (str(i + 1) if i else "") for i in range(count)]


@dataclass(frozen=True)
class Image:
    """What the table knows of an image: its entrypoint, default args, user and env, and the
    account lines its /etc/passwd and /etc/group add (programs look their uid up there)."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    user: int = 0
    env: tuple[tuple[str, str], ...] = ()
    passwd: str = ""
    group: str = ""
    # Host paths that stand for the image's filesystem (the interpreter, the virtualenv, the
    # source): every pod sees them at their own paths, whatever its volumes cover.
    paths: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        """$PATH in the container: the entrypoint's folder first."""
        return str(Path(self.entrypoint[0]).parent) + ":/usr/local/bin:/usr/bin:/bin"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Image:
        """An image from the ``--images`` JSON table."""
        return cls(
            entrypoint=tuple(data["entrypoint"]),
            cmd=tuple(data.get("cmd") or ()),
            user=int(data.get("user") or 0),
            env=tuple(sorted((data.get("env") or {}).items())),
            passwd=str(data.get("passwd") or ""),
            group=str(data.get("group") or ""),
            paths=tuple(data.get("paths") or ()),
        )


def _private_ancestors(paths: tuple[str, ...]) -> list[str]:
    """Folders above ``paths`` that other users cannot traverse (``/root``), outermost first."""
    found: list[str] = []
    for path in paths:
        for parent in reversed(Path(path).parents):
            if (
                str(parent) != "/"
                and not parent.stat().st_mode & 0o001
                and str(parent) not in found
            ):
                found.append(str(parent))
    return found


class ContainerConfigError(Exception):
    """The pod asks for something this kubelet cannot give (waiting reason, message)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class PodRun:
    """One pod this kubelet runs."""

    uid: str
    namespace: str
    name: str
    node: str
    pod: dict[str, Any]
    netns: str = ""
    ip: str = ""
    proc: subprocess.Popen[bytes] | None = None
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    started_at: str = ""
    start_time: str = ""
    restarts: int = 0
    next_start: float = 0.0
    waiting: tuple[str, str] | None = None
    terminated: dict[str, Any] | None = None
    last_state: dict[str, Any] = field(default_factory=dict)
    started: bool = False  # startup probe passed (or none)
    ready: bool = False
    probe_failures: int = 0
    probe_due: float = 0.0
    probe: concurrent.futures.Future[bool] | None = None
    killing_since: float | None = None
    sent_status: str = ""
    workdir: Path = Path()

    @property
    def container(self) -> dict[str, Any]:
        containers: list[dict[str, Any]] = self.pod["spec"]["containers"]
        return containers[0]

    @property
    def restart_policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy") or "Always")


class _Forwarder:
    """TCP forwarding from the bridge's address to the API server on loopback."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.listen, self.upstream = listen, upstream
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-forwarder", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, self.listen[0], self.listen[1])
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


class Kubelet:
    """Registers nodes and runs the pods bound to them until :meth:`stop`."""

    def __init__(
        self,
        api: Api,
        *,
        nodes: list[str],
        cpu: str,
        memory: str,
        images: dict[str, Image],
        workdir: Path,
        api_port: int,
        ca_file: str,
        subnet: int,
    ) -> None:
        self.api = api
        self.nodes = nodes
        self.cpu, self.memory = cpu, memory
        self.images = images
        self.workdir = workdir
        self.api_port = api_port
        self.ca_file = ca_file
        self.subnet = subnet
        self.net = network.PodNetwork()
        self.pods: dict[str, PodRun] = {}
        self._stop = threading.Event()
        self._probes = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="probe")
        self._lease_due = 0.0
        self._dns: ClusterDns | None = None
        self._forwarders: list[_Forwarder] = []

    # --- lifecycle ---------------------------------------------------------------------------

    def run(self) -> None:
        """Set up the network, register nodes, then reconcile pods until stopped."""
        self.net.open(self.subnet)
        try:
            self._dns = ClusterDns(self.api, self.net.gateway)
            self._dns.start()
            upstream = ("127.0.0.1", self.api_port)
            # The API's advertised endpoint, and the ``kubernetes`` Service's ClusterIP:443.
            for listen in ((self.net.gateway, self.api_port), (self.net.api_service_ip, 443)):
                forwarder = _Forwarder(listen, upstream)
                forwarder.start()
                self._forwarders.append(forwarder)
            for node in self.nodes:
                self._register(node)
            print(f"test kubelet ready: nodes {', '.join(self.nodes)}", flush=True)
            while not self._stop.is_set():
                self._tick()
                self._stop.wait(_TICK_S)
        finally:
            self._shutdown()

    def stop(self) -> None:
        """Ask the loop to end (signal-safe)."""
        self._stop.set()

    def _shutdown(self) -> None:
        for run in list(self.pods.values()):
            self._kill(run, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for run in list(self.pods.values()):
            if run.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    run.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            self._kill(run, signal.SIGKILL)
            self._release(run)
        self._probes.shutdown(wait=False, cancel_futures=True)
        for forwarder in self._forwarders:
            forwarder.stop()
        if self._dns:
            self._dns.stop()
        for node in self.nodes:
            with contextlib.suppress(ApiError, OSError):
                self.api.call("DELETE", f"/api/v1/nodes/{node}")
        self.net.close()

    # --- nodes ---------------------------------------------------------------------------------

    def _register(self, node: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node,
                "labels": {
                    "kubernetes.io/hostname": node,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
        }
        with contextlib.suppress(ApiError):
            self.api.call("POST", "/api/v1/nodes", body)
        resources = {"cpu": self.cpu, "memory": self.memory, "pods": "110"}
        now = rfc3339()
        conditions = [
            (kind, "False", reason, message)
            for kind, reason, message in (
                ("MemoryPressure", "KubeletHasSufficientMemory", "sufficient memory"),
                ("DiskPressure", "KubeletHasNoDiskPressure", "no disk pressure"),
                ("PIDPressure", "KubeletHasSufficientPID", "sufficient PID"),
            )
        ] + [("Ready", "True", "KubeletReady", "test kubelet is posting ready status")]
        status: dict[str, Any] = {
            "capacity": resources,
            "allocatable": resources,
            "addresses": [
                {"type": "InternalIP", "address": self.net.gateway},
                {"type": "Hostname", "address": node},
            ],
            "conditions": [
                {
                    "type": kind,
                    "status": state,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
                for kind, state, reason, message in conditions
            ],
            "nodeInfo": {
                "machineID": node,
                "systemUUID": node,
                "bootID": node,
                "kernelVersion": os.uname().release,
                "osImage": "NodeLab test kubelet",
                "containerRuntimeVersion": "nodelab-test://1",
                "kubeletVersion": "v1.37.2",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        self.api.call(
            "PATCH", f"/api/v1/nodes/{node}/status", {"status": status}, content_type=STRATEGIC
        )

    def _renew_leases(self) -> None:
        for node in self.nodes:
            path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"
            spec = {
                "holderIdentity": node,
                "leaseDurationSeconds": _LEASE_DURATION_S,
                "renewTime": rfc3339(timespec="microseconds"),
            }
            try:
                if self.api.get(path) is None:
                    self.api.call(
                        "POST",
                        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                        {"metadata": {"name": node}, "spec": spec},
                    )
                else:
                    self.api.call("PATCH", path, {"spec": spec}, content_type=STRATEGIC)
            except (ApiError, OSError) as exc:
                log.warning("lease %s: %s", node, exc)

    # --- the loop ------------------------------------------------------------------------------

    def _tick(self) -> None:
        if time.monotonic() >= self._lease_due:
            self._renew_leases()
            self._lease_due = time.monotonic() + _LEASE_RENEW_S
        try:
            listing = self.api.call("GET", "/api/v1/pods")
        except (ApiError, OSError) as exc:
            log.warning("listing pods: %s", exc)
            return
        seen = set()
        for pod in listing.get("items", []):
            if pod["spec"].get("nodeName") not in self.nodes:
                continue
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            run = self.pods.get(uid)
            if run is None:
                if pod["metadata"].get("deletionTimestamp") or pod.get("status", {}).get(
                    "phase"
                ) in ("Succeeded", "Failed"):
                    self._final_delete_if_deleting(pod)
                    continue
                run = PodRun(
                    uid=uid,
                    namespace=pod["metadata"]["namespace"],
                    name=pod["metadata"]["name"],
                    node=pod["spec"]["nodeName"],
                    pod=pod,
                )
                self.pods[uid] = run
            run.pod = pod
            with contextlib.suppress(ApiError, OSError):
                self._sync(run)
        for uid in [uid for uid in self.pods if uid not in seen]:
            run = self.pods.pop(uid)
            self._kill(run, signal.SIGKILL)
            self._release(run)

    def _final_delete_if_deleting(self, pod: dict[str, Any]) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._delete_now(
                pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"]
            )

    def _delete_now(self, namespace: str, name: str, uid: str) -> None:
        with contextlib.suppress(ApiError, OSError):
            self.api.call(
                "DELETE",
                f"/api/v1/namespaces/{namespace}/pods/{name}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
            )

    def _sync(self, run: PodRun) -> None:
        meta = run.pod["metadata"]
        if meta.get("deletionTimestamp"):
            self._terminate(run)
            return
        if not run.netns and run.terminated is None:
            self._setup(run)
        self._supervise(run)
        self._report(run)

    # --- starting ------------------------------------------------------------------------------

    def _setup(self, run: PodRun) -> None:
        run.start_time = run.start_time or rfc3339()
        run.workdir = self.workdir / "pods" / f"{run.namespace}_{run.name}_{run.uid[:8]}"
        run.workdir.mkdir(parents=True, exist_ok=True)
        try:
            run.argv = self._argv(run)
            search = [f"{run.namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local"]
            image = self._image(run)
            etc = {}
            for name, line in (("passwd", image.passwd), ("group", image.group)):
                if line:
                    etc[name] = Path(f"/etc/{name}").read_text() + line + "\n"
            run.netns, run.ip = self.net.add_pod(run.name[:63], search, etc)
            run.env = self._env(run)
            self._volumes(run)
        except ContainerConfigError as exc:
            run.waiting = (exc.reason, str(exc))
            return
        run.waiting = None
        run.next_start = time.monotonic()

    def _image(self, run: PodRun) -> Image:
        name = str(run.container.get("image") or "")
        image = self.images.get(name)
        if image is None:
            raise ContainerConfigError(
                "ErrImagePull",
                f'failed to pull image "{name}": the test kubelet runs only '
                f"{', '.join(sorted(self.images))}",
            )
        return image

    def _argv(self, run: PodRun) -> list[str]:
        image = self._image(run)
        container = run.container
        command = list(container.get("command") or image.entrypoint)
        args = list(container.get("args") or ([] if container.get("command") else image.cmd))
        argv = command + args
        if argv and "/" not in argv[0]:
            found = shutil.which(argv[0], path=image.path)
            if found is None:
                raise ContainerConfigError(
                    "RunContainerError", f'exec: "{argv[0]}": executable file not found in $PATH'
                )
            argv[0] = found
        return argv

    def _user(self, run: PodRun) -> tuple[int, int, list[int]]:
        pod_ctx = run.pod["spec"].get("securityContext") or {}
        ctx = run.container.get("securityContext") or {}
        image = self._image(run)
        uid = ctx.get("runAsUser", pod_ctx.get("runAsUser", image.user))
        gid = ctx.get("runAsGroup", pod_ctx.get("runAsGroup", uid))
        non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot", False))
        if non_root and int(uid) == 0:
            raise ContainerConfigError(
                "CreateContainerConfigError",
                "Error: container has runAsNonRoot and image will run as root",
            )
        groups = [int(gid)]
        if pod_ctx.get("fsGroup") is not None:
            groups.append(int(pod_ctx["fsGroup"]))
        groups += [int(g) for g in pod_ctx.get("supplementalGroups") or []]
        return int(uid), int(gid), sorted(set(groups))

    def _field(self, run: PodRun, path: str) -> str:
        meta, spec = run.pod["metadata"], run.pod["spec"]
        simple = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
            "status.podIP": run.ip,
            "status.podIPs": run.ip,
            "status.hostIP": self.net.gateway,
            "status.hostIPs": self.net.gateway,
        }
        if path in simple:
            return str(simple[path])
        match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if match:
            return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
        raise ContainerConfigError("CreateContainerConfigError", f"unsupported fieldRef {path}")

    def _env(self, run: PodRun) -> dict[str, str]:
        image = self._image(run)
        env: dict[str, str] = {
            "PATH": image.path,
            "HOSTNAME": run.name,
            "HOME": "/",
            **dict(image.env),
            "KUBERNETES_SERVICE_HOST": self.net.api_service_ip,
            "KUBERNETES_SERVICE_PORT": "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        }
        for item in run.container.get("env") or []:
            if "value" in item:
                env[item["name"]] = _VAR_REF.sub(
                    lambda m: env.get(m.group(1), m.group(0)), str(item["value"])
                )
                continue
            source = item.get("valueFrom") or {}
            if "fieldRef" in source:
                env[item["name"]] = self._field(run, source["fieldRef"]["fieldPath"])
            else:
                raise ContainerConfigError(
                    "CreateContainerConfigError",
                    f"env {item['name']}: only value and fieldRef are supported",
                )
        run.argv = [_VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), a) for a in run.argv]
        return env

    def _wants_token(self, run: PodRun) -> bool:
        spec = run.pod["spec"]
        if spec.get("automountServiceAccountToken") is not None:
            return bool(spec["automountServiceAccountToken"])
        account = self.api.get(
            f"/api/v1/namespaces/{run.namespace}/serviceaccounts/"
            f"{spec.get('serviceAccountName') or 'default'}"
        )
        return (account or {}).get("automountServiceAccountToken") is not False

    def _volumes(self, run: PodRun) -> None:
        fs_group = (run.pod["spec"].get("securityContext") or {}).get("fsGroup")
        declared = {v["name"]: v for v in run.pod["spec"].get("volumes") or []}
        for volume in declared.values():
            if not {"emptyDir", "projected", "secret"} & set(volume):
                raise ContainerConfigError(
                    "CreateContainerConfigError",
                    f"volume {volume['name']}: only emptyDir and secret are supported by the "
                    "test kubelet",
                )
            if "secret" in volume:
                self._secret_volume(run, volume, fs_group)
            if "emptyDir" in volume:
                path = run.workdir / "volumes" / volume["name"]
                path.mkdir(parents=True, exist_ok=True)
                path.chmod(0o1777 if fs_group is None else 0o2775)
                if fs_group is not None:
                    os.chown(path, 0, int(fs_group))
        if self._wants_token(run):
            account = run.pod["spec"].get("serviceAccountName") or "default"
            answer = self.api.call(
                "POST",
                f"/api/v1/namespaces/{run.namespace}/serviceaccounts/{account}/token",
                {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {
                        "expirationSeconds": 3607,
                        "boundObjectRef": {
                            "apiVersion": "v1",
                            "kind": "Pod",
                            "name": run.name,
                            "uid": run.uid,
                        },
                    },
                },
            )
            token_dir = run.workdir / "serviceaccount"
            token_dir.mkdir(parents=True, exist_ok=True)
            (token_dir / "token").write_text(answer["status"]["token"])
            shutil.copy(self.ca_file, token_dir / "ca.crt")
            (token_dir / "namespace").write_text(run.namespace)
            for item in token_dir.iterdir():
                item.chmod(0o644)

    def _secret_volume(self, run: PodRun, volume: dict[str, Any], fs_group: Any) -> None:
        """A Secret's keys as files (``items`` picks and renames them), ``defaultMode``, group
        ``fsGroup``, as the kubelet writes them; mounted read-only by :meth:`_script`."""
        source = volume["secret"]
        secret = self.api.get(f"/api/v1/namespaces/{run.namespace}/secrets/{source['secretName']}")
        if secret is None:
            raise ContainerConfigError(
                "CreateContainerConfigError", f'secret "{source["secretName"]}" not found'
            )
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        items = source.get("items") or [{"key": key, "path": key} for key in data]
        path = run.workdir / "volumes" / volume["name"]
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)
        for item in items:
            target = path / item["path"]
            target.write_bytes(data[item["key"]])
            target.chmod(int(item.get("mode", source.get("defaultMode", 0o644))))
            if fs_group is not None:
                os.chown(target, 0, int(fs_group))

    def _script(self, run: PodRun) -> list[str]:
        """``sh -c`` inside the pod's namespaces: mounts, then the container as its user."""
        uid, gid, groups = self._user(run)
        ctx = run.container.get("securityContext") or {}
        declared = {v["name"]: v for v in run.pod["spec"].get("volumes") or []}
        image = self._image(run)
        lines = ["set -e", "mount -t tmpfs -o mode=755 tmpfs /run", "mkdir -p /run/image"]
        for index, path in enumerate(image.paths):
            lines += [
                f"mkdir /run/image/{index}",
                f"mount --bind {shlex.quote(path)} /run/image/{index}",
            ]
        if (run.workdir / "serviceaccount").is_dir():
            lines += [
                f"mkdir -p {_SA_DIR}",
                f"mount --bind {shlex.quote(str(run.workdir / 'serviceaccount'))} {_SA_DIR}",
                f"mount -o remount,bind,ro {_SA_DIR}",
            ]
        # Every volume's folder is staged under /run first: the pod's work folder may lie below
        # a path a mount covers next (an emptyDir at /tmp hides a work folder in /tmp).
        mounted = [
            mount
            for mount in run.container.get("volumeMounts") or []
            if {"emptyDir", "secret"} & set(declared.get(mount["name"]) or {})
        ]
        lines.append("mkdir -p /run/volumes")
        for name in sorted({mount["name"] for mount in mounted}):
            source = shlex.quote(str(run.workdir / "volumes" / name))
            lines += [
                f"mkdir /run/volumes/{shlex.quote(name)}",
                f"mount --bind {source} /run/volumes/{shlex.quote(name)}",
            ]
        for mount in mounted:
            source = f"/run/volumes/{shlex.quote(mount['name'])}"
            target = shlex.quote(mount["mountPath"])
            lines += [f"mkdir -p {target}", f"mount --bind {source} {target}"]
            if "secret" in declared[mount["name"]] or mount.get("readOnly"):
                lines.append(f"mount -o remount,bind,ro {target}")
        # The image's own files, as a container has them: readable by the pod's user even where
        # the host keeps them in a private home (a tmpfs hides what else that folder holds).
        for folder in _private_ancestors(image.paths):
            lines.append(f"mount -t tmpfs -o mode=755 tmpfs {shlex.quote(folder)}")
        for index, path in enumerate(image.paths):
            lines += [
                f"mkdir -p {shlex.quote(path)}",
                f"mount --bind /run/image/{index} {shlex.quote(path)}",
            ]
        if ctx.get("readOnlyRootFilesystem"):
            lines.append("mount -o remount,bind,ro /")
        workdir = run.container.get("workingDir") or "/"
        lines.append(f"cd {shlex.quote(workdir)}")
        privileges = ["--no-new-privs"] if ctx.get("allowPrivilegeEscalation") is False else []
        setpriv = [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={gid}",
            f"--groups={','.join(str(g) for g in groups)}",
            "--pdeathsig=KILL",
            *privileges,
        ]
        if ctx.get("capabilities", {}).get("drop") == ["ALL"]:
            setpriv += ["--inh-caps=-all", "--bounding-set=-all"]
        lines.append("exec " + shlex.join([*setpriv, "--", *run.argv]))
        return ["ip", "netns", "exec", run.netns, "/bin/sh", "-c", "\n".join(lines)]

    def _launch(self, run: PodRun) -> None:
        log_path = run.workdir / f"{run.container['name']}.log"
        with log_path.open("ab") as handle:
            handle.write(f"--- start {rfc3339()} restart {run.restarts}\n".encode())
            handle.flush()
            run.proc = subprocess.Popen(
                self._script(run),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=run.env,
                start_new_session=True,
            )
        run.started_at = rfc3339()
        run.terminated = None
        run.waiting = None
        run.started = "startupProbe" not in run.container
        run.ready = False
        run.probe_failures = 0
        run.probe_due = time.monotonic() + float(
            (run.container.get("readinessProbe") or {}).get("initialDelaySeconds", 0)
        )

    # --- running -------------------------------------------------------------------------------

    def _supervise(self, run: PodRun) -> None:
        if run.waiting is not None and run.waiting[0] != "CrashLoopBackOff":
            return  # a configuration error: nothing runs until the pod is replaced
        if run.proc is None:
            if run.terminated is None and time.monotonic() >= run.next_start and run.netns:
                self._launch(run)
            return
        code = run.proc.poll()
        if code is None:
            self._probe(run)
            return
        exit_code = code if code >= 0 else 128 - code
        finished = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": run.started_at,
            "finishedAt": rfc3339(),
            "containerID": f"nodelab-test://{run.proc.pid}",
        }
        run.proc = None
        run.ready = False
        policy = run.restart_policy
        if policy == "Never" or (policy == "OnFailure" and exit_code == 0):
            run.terminated = finished
            self._release(run)
            return
        run.last_state = {"terminated": finished}
        run.restarts += 1
        delay = min(_BACKOFF_CAP_S, 2.0 ** (run.restarts - 1))
        run.next_start = time.monotonic() + delay
        run.waiting = (
            "CrashLoopBackOff",
            f"back-off {delay:.0f}s restarting failed container={run.container['name']} "
            f"pod={run.name}",
        )

    def _probe(self, run: PodRun) -> None:
        if run.probe is not None:
            if not run.probe.done():
                return
            ok = run.probe.result()
            run.probe = None
            spec = self._probe_spec(run)
            if ok:
                run.probe_failures = 0
                if not run.started:
                    run.started = True
                else:
                    run.ready = True
            else:
                run.probe_failures += 1
                if run.started and run.probe_failures >= int(spec.get("failureThreshold", 3)):
                    run.ready = False
        spec = self._probe_spec(run)
        if not spec:
            run.ready = run.started = True
            return
        if time.monotonic() < run.probe_due:
            return
        run.probe_due = time.monotonic() + float(spec.get("periodSeconds", 10))
        if not run.started or not run.ready:
            # A kubelet probes on its period; the first answers here come sooner so that a
            # pod that is up is not held back a whole period (tests wait on Ready).
            run.probe_due = time.monotonic() + min(1.0, float(spec.get("periodSeconds", 10)))
        run.probe = self._probes.submit(self._http_probe, run, spec)

    def _probe_spec(self, run: PodRun) -> dict[str, Any]:
        key = "readinessProbe" if run.started else "startupProbe"
        return dict(run.container.get(key) or {})

    def _http_probe(self, run: PodRun, spec: dict[str, Any]) -> bool:
        get = spec.get("httpGet")
        if not get:
            return True  # exec and tcpSocket probes: not supported, counted as passing
        port = get["port"]
        if isinstance(port, str):
            port = next(
                (
                    p["containerPort"]
                    for p in run.container.get("ports") or []
                    if p.get("name") == port
                ),
                0,
            )
        try:
            conn = http.client.HTTPConnection(
                run.ip, int(port), timeout=float(spec.get("timeoutSeconds", 1))
            )
            conn.request("GET", get.get("path", "/"))
            status = conn.getresponse().status
            conn.close()
        except OSError:
            return False
        return 200 <= status < 400

    # --- stopping ------------------------------------------------------------------------------

    def _kill(self, run: PodRun, sig: signal.Signals) -> None:
        if run.proc is not None and run.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(run.proc.pid, sig)

    def _terminate(self, run: PodRun) -> None:
        meta = run.pod["metadata"]
        grace = float(meta.get("deletionGracePeriodSeconds") or 0)
        if run.killing_since is None:
            run.killing_since = time.monotonic()
            self._kill(run, signal.SIGTERM)
        alive = run.proc is not None and run.proc.poll() is None
        if alive and time.monotonic() - run.killing_since >= grace:
            self._kill(run, signal.SIGKILL)
            assert run.proc is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.proc.wait(timeout=2)
            alive = run.proc.poll() is None
        if alive:
            return
        self._release(run)
        self.pods.pop(run.uid, None)
        self._delete_now(run.namespace, run.name, run.uid)

    def _release(self, run: PodRun) -> None:
        if run.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(run.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.proc.wait(timeout=5)
        if run.netns:
            self.net.remove_pod(run.netns)
            run.netns = ""

    # --- status --------------------------------------------------------------------------------

    def _report(self, run: PodRun) -> None:
        container = run.container
        if run.terminated is not None:
            state: dict[str, Any] = {"terminated": run.terminated}
            phase = "Succeeded" if run.terminated["exitCode"] == 0 else "Failed"
        elif run.waiting is not None:
            state = {"waiting": {"reason": run.waiting[0], "message": run.waiting[1]}}
            phase = "Running" if run.restarts else "Pending"
        elif run.proc is not None:
            state = {"running": {"startedAt": run.started_at}}
            phase = "Running"
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
            phase = "Pending"
        ready = run.ready and "running" in state
        old = {c["type"]: c for c in (run.pod.get("status") or {}).get("conditions") or []}

        def condition(kind: str, value: bool, reason: str = "") -> dict[str, Any]:
            text = "True" if value else "False"
            previous = old.get(kind, {})
            since = previous.get("lastTransitionTime") if previous.get("status") == text else None
            entry = {"type": kind, "status": text, "lastTransitionTime": since or rfc3339()}
            if reason and not value:
                entry["reason"] = reason
            return entry

        terminal = run.terminated is not None
        reason = "PodCompleted" if terminal else "ContainersNotReady"
        status: dict[str, Any] = {
            "phase": phase,
            "hostIP": self.net.gateway,
            "hostIPs": [{"ip": self.net.gateway}],
            "startTime": run.start_time,
            "conditions": [
                condition("PodReadyToStartContainers", bool(run.ip) or terminal),
                condition("Initialized", True),
                condition("ContainersReady", ready, reason),
                condition("Ready", ready, reason),
            ],
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container.get("image", ""),
                    "imageID": container.get("image", ""),
                    "ready": ready,
                    "started": bool(run.started and "running" in state),
                    "restartCount": run.restarts,
                    "state": state,
                    "lastState": run.last_state,
                }
            ],
        }
        if run.ip:
            status["podIP"] = run.ip
            status["podIPs"] = [{"ip": run.ip}]
        conditions: list[dict[str, Any]] = status["conditions"]
        key = json.dumps(
            {**status, "conditions": [(c["type"], c["status"]) for c in conditions]},
            sort_keys=True,
        )
        if key == run.sent_status:
            return
        self.api.call(
            "PATCH",
            f"/api/v1/namespaces/{run.namespace}/pods/{run.name}/status",
            {"status": status},
            content_type=STRATEGIC,
        )
        run.sent_status = key


def build_parser() -> argparse.ArgumentParser:
    """The test kubelet's flags."""
    parser = argparse.ArgumentParser(
        prog="test-kubelet", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--server", required=True, help="API server URL (loopback)")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--cpu", default="4", help="CPU capacity of each node")
    parser.add_argument("--memory", default="16Gi", help="memory capacity of each node")
    parser.add_argument(
        "--images",
        type=Path,
        required=True,
        metavar="FILE",
        help="JSON: image name -> {entrypoint, cmd, user, env, passwd, group}",
    )
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--subnet", required=True, type=int, help="the pod /24: 10.244.N.0")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the test kubelet until SIGTERM."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    api = Api(args.server, args.ca, args.cert, args.key)
    port = int(args.server.rsplit(":", 1)[1])
    kubelet = Kubelet(
        api,
        nodes=node_names(args.nodes),
        cpu=args.cpu,
        memory=args.memory,
        images={
            name: Image.from_json(data)
            for name, data in json.loads(args.images.read_text()).items()
        },
        workdir=args.workdir,
        api_port=port,
        ca_file=args.ca,
        subnet=args.subnet,
    )
    signal.signal(signal.SIGTERM, lambda *_: kubelet.stop())
    signal.signal(signal.SIGINT, lambda *_: kubelet.stop())
    try:
        kubelet.run()
    except network.NetworkUnavailable as exc:
        print(f"test kubelet: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
