"""A small, synchronous Kubernetes API wrapper for the operator's children.

Plain dicts in and out (no generated models, so nothing is silently dropped or renamed),
errors as :class:`ApiError` with the HTTP status, and a call counter for measurements. Auth,
TLS and token refresh come from the ``kubernetes`` client's configuration (kubeconfig or
in-cluster). The kopf handlers are synchronous and run in kopf's thread pool, so a blocking
call never stalls the operator's event loop.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes

__all__ = ["KINDS", "ApiError", "ChildConflict", "Cluster", "Kind", "controller_uid"]


class ApiError(Exception):
    """The API server refused a request; ``status`` is the HTTP status (409: already exists)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class ChildConflict(Exception):
    """An object has a child's name but another controller (or none): it is left alone."""

    def __init__(self, existing: Mapping[str, Any], kind: str) -> None:
        meta = existing.get("metadata") or {}
        self.kind = kind
        self.name = str(meta.get("name"))
        controller = _controller(existing)
        holder = (
            f"its controller is {controller.get('kind')} {controller.get('name')}, "
            f"uid {controller.get('uid')}"
            if controller
            else "it has no controller"
        )
        super().__init__(
            f"{kind} {self.name} exists and this NodeLab does not control it ({holder})"
        )


def _controller(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            found: Mapping[str, Any] = ref
            return found
    return None


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    """The uid of the object's controller (the owner reference with ``controller: true``)."""
    controller = _controller(obj)
    return str(controller["uid"]) if controller and controller.get("uid") else None


@dataclass(frozen=True)
class Kind:
    """Where a kind of object lives in the API."""

    prefix: str  # /api/v1 or /apis/<group>/<version>
    plural: str
    strategic: bool = True  # built-in kinds accept strategic merge patches; custom ones do not


KINDS: dict[str, Kind] = {
    "Deployment": Kind("/apis/apps/v1", "deployments"),
    "Service": Kind("/api/v1", "services"),
    "ServiceAccount": Kind("/api/v1", "serviceaccounts"),
    "Pod": Kind("/api/v1", "pods"),
    "Secret": Kind("/api/v1", "secrets"),
    "Job": Kind("/apis/batch/v1", "jobs"),
    "Role": Kind("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": Kind("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
}

_STRATEGIC = "application/strategic-merge-patch+json"
_MERGE = "application/merge-patch+json"


class Cluster:
    """The API calls the operator makes, over one ``kubernetes`` ApiClient."""

    def __init__(self, api_client: Any, *, timeout: float = 30.0) -> None:
        self._api = api_client
        self._timeout = timeout
        self._lock = threading.Lock()
        self.calls = 0

    @classmethod
    def connect(cls, config_file: str | None = None, *, timeout: float = 30.0) -> Cluster:
        """In-cluster credentials inside a pod, else the kubeconfig (``$KUBECONFIG``)."""
        if config_file is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = kubernetes.client.Configuration()
            kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            return cls(kubernetes.client.ApiClient(configuration), timeout=timeout)
        # The whole $KUBECONFIG: the client merges a path list as kubectl (and kopf) do.
        path = config_file or os.environ.get("KUBECONFIG") or None
        client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=path
        )
        return cls(client, timeout=timeout)

    def close(self) -> None:
        """Release the connection pool."""
        self._api.close()

    # --- raw -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One API call; returns the decoded JSON answer or raises ApiError."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        params = self._api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params=headers,
            body=dict(body) if body is not None else None,
            auth_settings=["BearerToken"],
        )
        with self._lock:
            self.calls += 1
        response = self._api.call_api(*params, _request_timeout=self._timeout)
        response.read()
        text = (response.data or b"").decode("utf-8", errors="replace")
        if not 200 <= response.status < 300:
            reason, message = str(response.reason or ""), text
            try:
                answer = json.loads(text)
                reason, message = (
                    str(answer.get("reason", reason)),
                    str(answer.get("message", text)),
                )
            except ValueError:
                pass
            raise ApiError(int(response.status), reason, message[:500])
        decoded: dict[str, Any] = json.loads(text) if text else {}
        return decoded

    # --- objects -----------------------------------------------------------------------------

    @staticmethod
    def _path(kind: str, namespace: str, name: str | None = None) -> str:
        where = KINDS[kind]
        path = f"{where.prefix}/namespaces/{namespace}/{where.plural}"
        return f"{path}/{name}" if name else path

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None if it does not exist."""
        try:
            return self.request("GET", self._path(kind, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Objects of ``kind`` in ``namespace`` carrying every label in ``labels``."""
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        answer = self.request(
            "GET", self._path(kind, namespace), query=[("labelSelector", selector)]
        )
        items = answer.get("items") or []
        # Filtered here too: a server that ignores the selector must not widen the result.
        return [
            item
            for item in items
            if all(
                ((item.get("metadata") or {}).get("labels") or {}).get(k) == v
                for k, v in labels.items()
            )
        ]

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``obj`` (ApiError 409 if it exists)."""
        meta = obj["metadata"]
        return self.request("POST", self._path(obj["kind"], meta["namespace"]), obj)

    def patch(
        self, kind: str, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Patch an object (strategic merge for built-in kinds)."""
        content_type = _STRATEGIC if KINDS[kind].strategic else _MERGE
        return self.request(
            "PATCH", self._path(kind, namespace, name), body, content_type=content_type
        )

    def apply(self, obj: Mapping[str, Any], *, create_only: bool = False) -> str:
        """Create ``obj``, or patch it to match if it already exists (409).

        Returns ``"created"``, ``"patched"``, or ``"exists"`` with ``create_only``. If ``obj``
        names a controller (``kopf.adopt``), an existing object is touched only if that same
        controller (by uid) controls it; otherwise ChildConflict, and it stays as it is.
        """
        try:
            self.create(obj)
            return "created"
        except ApiError as exc:
            if exc.status != 409:
                raise
        kind, meta = obj["kind"], obj["metadata"]
        owner = controller_uid(obj)
        if owner is None and create_only:
            return "exists"
        existing = self.get(kind, meta["namespace"], meta["name"])
        if existing is None:
            raise ApiError(409, "Conflict", f"{kind} {meta['name']} was deleted while applied")
        if owner is not None and controller_uid(existing) != owner:
            raise ChildConflict(existing, kind)
        if create_only:
            return "exists"
        # The uid just checked: if the object is replaced before the patch, the patch fails.
        # Not the resourceVersion: controllers bump it with every status write.
        uid = (existing.get("metadata") or {}).get("uid")
        body = {**obj, "metadata": {**meta, "uid": uid}} if uid else obj
        try:
            self.patch(kind, meta["namespace"], meta["name"], body)
        except ApiError as exc:
            if exc.status == 422 and "metadata.uid" in exc.message:
                # The server's word for "replaced since the check": worth a retry, not final.
                raise ApiError(409, "Conflict", f"{kind} {meta['name']} was replaced") from exc
            raise
        return "patched"

    def delete(self, kind: str, namespace: str, name: str, *, uid: str | None = None) -> bool:
        """Delete an object and, in the background, what it owns; False if it was gone.

        With ``uid``, only that object: one that replaced it under the same name meanwhile is
        the server's 409 (its precondition fails), not deleted.
        """
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
        }
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", self._path(kind, namespace, name), body)
            return True
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise

    def delete_controlled(self, kind: str, namespace: str, name: str, owner: str) -> bool:
        """Delete the object if (and only if) the controller with uid ``owner`` controls it.

        False if there is none, or someone else's (left alone: the name is no longer in the
        lab's way). The delete names the uid just checked, so a replacement is not deleted.
        """
        existing = self.get(kind, namespace, name)
        if existing is None or controller_uid(existing) != owner:
            return False
        if (existing.get("metadata") or {}).get("deletionTimestamp"):
            return True  # on its way out already
        uid = (existing.get("metadata") or {}).get("uid")
        return self.delete(kind, namespace, name, uid=str(uid) if uid else None)
