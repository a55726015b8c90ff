"""Run the real kopf operator against kmock's emulated API server, and play the kubelet.

Shared by the integration tests and bench row 5; no pytest inside (waits that run out raise
``tests.support.errors.WaitTimeout``, an operator that does not start ``SupportError``).

Workarounds for the emulator (docs/operator.md, "How it is tested without a cluster"):
every resource is declared with its verbs (kopf watches only what discovery lists), including
v1/namespaces; objects we create carry their own uid, resourceVersion and generation (the
emulator assigns none, and kopf.adopt needs the owner's uid); the kubeconfig is passed both
through $KUBECONFIG and ``KUBE_CONFIG_DEFAULT_LOCATION`` (the ``kubernetes`` client reads the
variable at import); waits are ``await asyncio.sleep`` polls with a deadline, never
``time.sleep``, because the emulator serves on the caller's own event loop.

kmock's public API covers all of it but one hook: :class:`ApiServer` overrides the emulator's
request handler ``_handle`` and trims its request log ``_requests`` (both private members of the
public ``kmock.KubernetesEmulator``; kmock 0.8 has no public hook to rewrite a request before it
is stored). Nothing here imports ``kmock._internal``: the merge patch the emulator applies is
reproduced with the public ``kmock.Object.patch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import aiohttp
import kmock
import kopf
import yaml
from nodelab.kube import cluster_api, main
from nodelab.kube.settings import OperatorSettings

from tests.support.errors import SupportError, WaitTimeout

__all__ = [
    "LAB_PATH",
    "NODELABS",
    "ApiServer",
    "Emulator",
    "emulating",
    "eventually",
    "running_operator",
]

T = TypeVar("T")
NODELABS = "lab.nodelab.dev/v1alpha1/nodelabs"
LAB_PATH = "/apis/lab.nodelab.dev/v1alpha1/namespaces/{ns}/nodelabs"
_ALL = {"list", "watch", "get", "create", "patch", "update", "delete"}
RESOURCES: dict[str, kmock.ResourceInfo] = {
    NODELABS: kmock.ResourceInfo(
        kind="NodeLab", namespaced=True, verbs=_ALL, subresources={"status"}, shortnames={"nl"}
    ),
    "v1/namespaces": kmock.ResourceInfo(kind="Namespace", namespaced=False, verbs=_ALL),
    "v1/events": kmock.ResourceInfo(kind="Event", namespaced=True, verbs=_ALL),
    "v1/pods": kmock.ResourceInfo(kind="Pod", namespaced=True, verbs=_ALL),
    "v1/services": kmock.ResourceInfo(kind="Service", namespaced=True, verbs=_ALL),
    "v1/serviceaccounts": kmock.ResourceInfo(kind="ServiceAccount", namespaced=True, verbs=_ALL),
    "v1/secrets": kmock.ResourceInfo(kind="Secret", namespaced=True, verbs=_ALL),
    "apps/v1/deployments": kmock.ResourceInfo(kind="Deployment", namespaced=True, verbs=_ALL),
    "batch/v1/jobs": kmock.ResourceInfo(kind="Job", namespaced=True, verbs=_ALL),
    "rbac.authorization.k8s.io/v1/roles": kmock.ResourceInfo(
        kind="Role", namespaced=True, verbs=_ALL
    ),
    "rbac.authorization.k8s.io/v1/rolebindings": kmock.ResourceInfo(
        kind="RoleBinding", namespaced=True, verbs=_ALL
    ),
}
_PATHS = {
    "NodeLab": "/apis/lab.nodelab.dev/v1alpha1/namespaces/{ns}/nodelabs",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
    "Pod": "/api/v1/namespaces/{ns}/pods",
}
_versions = itertools.count(1000)


class ApiServer(kmock.KubernetesEmulator):
    """kmock's emulator plus the metadata the real API server maintains.

    On create: ``uid``, ``resourceVersion``, ``generation`` 1 and a name from ``generateName``
    (kopf posts Events that way). On a merge patch: a new ``resourceVersion``; of the main
    resource, changing ``spec``: ``generation`` + 1, as the API server does for every spec
    change. And its optimistic concurrency: a merge patch naming another
    ``metadata.resourceVersion`` than the object's is refused with 409 (the operator's status
    write reads again), a JSON patch whose ``test`` of it fails with 422 (kopf's finalizer
    patches: kopf then waits for the next event; the emulator's own 500 made kopf retry the
    same stale patch with a backoff of up to a minute).

    A JSON patch keeps the ``resourceVersion``, unlike the API server's: kmock's watch ignores
    the ``resourceVersion`` it starts from and replays every object, so kopf sees a lab it has
    just listed a second time, stale; were its finalizer patch to move the version, kopf's
    ``test`` on that stale copy would fail and kopf would wait for an event already past.

    ``request_log_limit`` bounds kmock's request log: kmock matches every request against its
    whole log, so a long, busy run (the operator bench) slows down quadratically without it.
    Tests keep the whole log (None) to assert on it.
    """

    request_log_limit: int | None = None

    async def _handle(self, request: Any) -> Any:
        limit = self.request_log_limit
        if limit is not None and len(self._requests) > 2 * limit:
            del self._requests[:-limit]
        data = request.data
        if request.resource is not None and isinstance(data, dict):
            if request.action == kmock.action.CREATE:
                meta = data.setdefault("metadata", {})
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("generation", 1)
                meta["resourceVersion"] = str(next(_versions))
            elif request.action == kmock.action.UPDATE and request.name is not None:
                self._precondition(request, data)
                self._bump(request, data)
        elif (
            request.resource is not None
            and isinstance(data, list)
            and request.action == kmock.action.UPDATE
            and request.name is not None
        ):
            self._precondition(request, data)
        return await super()._handle(request)

    def _stored(self, request: Any) -> dict[str, Any] | None:
        wanted = (request.resource, request.namespace, request.name)
        for key, obj in self.objects.items():
            if key == wanted and not obj.deleted:
                raw: dict[str, Any] = obj.raw
                return raw
        return None

    def _precondition(self, request: Any, data: dict[str, Any] | list[Any]) -> None:
        stored = self._stored(request)
        if stored is None:
            return  # the emulator answers 404 itself
        current = (stored.get("metadata") or {}).get("resourceVersion")
        if isinstance(data, dict):
            wanted = (data.get("metadata") or {}).get("resourceVersion")
            if wanted is not None and wanted != current:
                raise kmock.KubernetesError(
                    status=409,
                    reason="Conflict",
                    message=f"Operation cannot be fulfilled on {request.resource.plural} "
                    f'"{request.name}": the object has been modified; please apply your '
                    "changes to the latest version and try again",
                )
            return
        for op in data:
            if (
                isinstance(op, dict)
                and op.get("op") == "test"
                and op.get("path") == "/metadata/resourceVersion"
                and op.get("value") != current
            ):
                raise kmock.KubernetesError(
                    status=422,
                    reason="Invalid",
                    message=f"the server rejected our request: testing value "
                    f"/metadata/resourceVersion failed: {current} is not {op.get('value')}",
                )

    def _bump(self, request: Any, data: dict[str, Any]) -> None:
        meta = data.setdefault("metadata", {})
        meta["resourceVersion"] = str(next(_versions))
        if request.subresource or "spec" not in data:
            return
        for (resource, namespace, name), obj in self.objects.items():
            if (resource, namespace, name) != (request.resource, request.namespace, request.name):
                continue
            if obj.deleted:
                return
            old = obj.raw
            if _merged_spec(old, data["spec"]) != old.get("spec"):
                meta["generation"] = int(old.get("metadata", {}).get("generation") or 1) + 1
            return


def _merged_spec(old: dict[str, Any], patch: dict[str, Any] | None) -> Any:
    """``old``'s spec after the merge patch ``patch``, merged as the emulator will store it."""
    probe = kmock.Object({"spec": old.get("spec") or {}})
    probe.patch({"spec": patch or {}})
    return probe.last.raw.get("spec")


def _kubeconfig(server_url: str) -> dict[str, Any]:
    """A kubeconfig with one context, ``kmock``, pointing at the emulator."""
    context = {"cluster": "kmock", "user": "kmock", "namespace": "default"}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": server_url}}],
        "users": [{"name": "kmock", "user": {"token": "kmock"}}],
        "contexts": [{"name": "kmock", "context": context}],
    }


async def eventually(
    probe: Callable[[], T | None], what: str, timeout: float = 90.0, interval: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; :class:`WaitTimeout` naming ``what``
    after ``timeout``.

    Generous by default: the machine is shared, and the shape of the answer matters, not speed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = probe()
        if value:
            return value
        if loop.time() > deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


@dataclasses.dataclass
class Emulator:
    """The emulated API server plus the kubeconfig that points at it."""

    server: kmock.KubernetesEmulator
    kubeconfig: Path

    # --- reading -----------------------------------------------------------------------------

    def get(self, resource: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        """The current state of an object, or None if absent or deleted."""
        for (res, ns, obj_name), obj in self.server.objects.items():
            if res == resource and ns == namespace and obj_name == name and not obj.deleted:
                raw: dict[str, Any] = obj.raw
                return raw
        return None

    def names(self, resource: str, namespace: str = "default") -> list[str]:
        """Names of the live objects of ``resource``."""
        return sorted(
            name
            for (res, ns, name), obj in self.server.objects.items()
            if res == resource and ns == namespace and not obj.deleted
        )

    def live(self, namespace: str = "default") -> set[tuple[str, str]]:
        """(resource, name) of every live object, e.g. ``("apps/v1/deployments", "x-node")``.

        One pass over the emulator's objects, for probes that ask about many at once.
        """
        return {
            ("/".join(part for part in (res.group, res.version, res.plural) if part), name)
            for (res, ns, name), obj in self.server.objects.items()
            if ns == namespace and not obj.deleted
        }

    def lab_status(self, name: str = "scaling-lab") -> dict[str, Any]:
        """The NodeLab's status (empty if none yet)."""
        status: dict[str, Any] = (self.get(NODELABS, name) or {}).get("status") or {}
        return status

    def condition(self, type_: str, name: str = "scaling-lab") -> dict[str, Any]:
        """A condition of the NodeLab (empty if absent)."""
        for condition in self.lab_status(name).get("conditions") or ():
            if condition.get("type") == type_:
                return dict(condition)
        return {}

    # --- writing (through HTTP, so kopf's watches see it) ----------------------------------

    async def create(self, kind: str, body: dict[str, Any], namespace: str = "default") -> None:
        """Create an object (the server adds uid, resourceVersion and generation)."""
        metadata = body.setdefault("metadata", {})
        metadata.setdefault("namespace", namespace)
        metadata.setdefault("creationTimestamp", "2025-01-01T00:00:00Z")
        await self._send("POST", _PATHS[kind].format(ns=namespace), json=body)

    async def patch(
        self, kind: str, name: str, body: dict[str, Any], namespace: str = "default"
    ) -> None:
        """Merge-patch an object, as kubectl or a controller would."""
        path = f"{_PATHS[kind].format(ns=namespace)}/{name}"
        await self._send(
            "PATCH", path, json=body, headers={"Content-Type": "application/merge-patch+json"}
        )

    async def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        """Delete an object (the emulator keeps it while finalizers remain)."""
        await self._send("DELETE", f"{_PATHS[kind].format(ns=namespace)}/{name}")

    async def collect_garbage(self) -> list[str]:
        """Play the garbage collector: delete objects whose owner no longer exists."""
        live_uids = {
            obj.raw.get("metadata", {}).get("uid")
            for obj in self.server.objects.values()
            if not obj.deleted
        }
        collected = []
        for (resource, namespace, name), obj in list(self.server.objects.items()):
            if obj.deleted:
                continue
            owners = obj.raw.get("metadata", {}).get("ownerReferences") or []
            if owners and not any(owner.get("uid") in live_uids for owner in owners):
                path = f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"
                url = f"{path}/namespaces/{namespace}/{resource.plural}/{name}"
                await self._send("DELETE", url)
                collected.append(f"{resource.plural}/{name}")
        return sorted(collected)

    async def _send(self, method: str, path: str, **kwargs: Any) -> None:
        # A connection per call: after an operator stops, a pooled keep-alive connection of
        # kmock's own client session can hang forever instead of failing.
        url = f"{str(self.server.url).rstrip('/')}{path}"
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
            session.request(method, url, **kwargs) as response,
        ):
            if response.status >= 300:
                raise SupportError(f"{method} {path}: {await response.text()}")

    # --- the kubelet and the controllers, played by the test ---------------------------------

    async def mark_deployment_ready(self, name: str = "scaling-lab-node") -> None:
        """What the Deployment controller and the kubelets would report once every pod is up."""
        deployment = self.get("apps/v1/deployments", name)
        if deployment is None:
            raise SupportError(f"no Deployment {name}")
        replicas = deployment["spec"]["replicas"]
        await self.patch("Deployment", name, {"status": {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas,
        }})  # fmt: skip

    async def finish_job(self, name: str, *, succeeded: bool = True) -> None:
        """What the Job controller reports when the load pod exits."""
        if succeeded:
            status = {"succeeded": 1, "completionTime": "2025-01-01T00:01:00Z",
                      "conditions": [{"type": "Complete", "status": "True"}]}  # fmt: skip
        else:
            status = {"failed": 1, "conditions": [{
                "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit"}]}  # fmt: skip
        await self.patch("Job", name, {"status": status})


@contextlib.contextmanager
def emulating(server: kmock.KubernetesEmulator, directory: Path) -> Iterator[Emulator]:
    """Declare NodeLab's resources on ``server``, write a kubeconfig for it into ``directory``
    and point this process's Kubernetes clients at it until the block ends."""
    for key, info in RESOURCES.items():
        server.resources[key] = info
    url = str(server.url).rstrip("/")
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(_kubeconfig(url)), encoding="utf-8")
    with (
        mock.patch.dict(os.environ, {"KUBECONFIG": str(kubeconfig)}),
        mock.patch("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig)),
    ):
        yield Emulator(server=server, kubeconfig=kubeconfig)


@contextlib.asynccontextmanager
async def running_operator(
    emulator: Emulator, settings: OperatorSettings
) -> AsyncIterator[cluster_api.Cluster]:
    """Run the operator in a task on this loop until the block ends; yield its API client."""
    cluster = cluster_api.Cluster.connect(str(emulator.kubeconfig), timeout=30)
    stop, ready = asyncio.Event(), asyncio.Event()
    memo = kopf.Memo(cluster=cluster)
    task = asyncio.create_task(main.run(settings, memo=memo, stop_flag=stop, ready_flag=ready))
    try:
        await _first(ready.wait(), task, timeout=60)
        yield cluster
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=60)
        finally:
            cluster.close()


async def _first(waiter: Awaitable[Any], task: asyncio.Task[None], timeout: float) -> None:
    waiting = asyncio.ensure_future(waiter)
    done, _ = await asyncio.wait({waiting, task}, timeout=timeout, return_when="FIRST_COMPLETED")
    if task in done:
        waiting.cancel()
        task.result()  # raises what stopped the operator
        raise SupportError("the operator exited before it was ready")
    if waiting not in done:
        waiting.cancel()
        raise SupportError(f"the operator was not ready after {timeout}s")
