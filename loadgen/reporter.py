"""``--report-to NAMESPACE/NAME``: write the report into a NodeLab's ``status.lastRun``.

A JSON Patch on the status subresource that replaces ``lastRun`` whole (a merge patch would
keep keys of an earlier run's maps, such as ``errors.byKind``, that this run does not have),
through the ``kubernetes`` client, retried
with capped exponential backoff on conflicts, throttling, server errors and broken
connections, for a bounded number of attempts. The retry loop is pure: it takes any object
with ``patch_namespaced_custom_object_status`` and a ``sleep`` function.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

__all__ = [
    "GROUP",
    "PLURAL",
    "VERSION",
    "ReportError",
    "StatusApi",
    "backoff_delays",
    "is_retryable",
    "kubernetes_api",
    "parse_report_to",
    "patch_status",
    "report_patch",
    "send_report",
]

GROUP = "lab.nodelab.dev"
VERSION = "v1alpha1"
PLURAL = "nodelabs"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"

log = logging.getLogger(__name__)

# RFC 1123 label (namespace) and subdomain (object name), as Kubernetes checks them.
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
RETRYABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})


class ReportError(RuntimeError):
    """The report could not be written into the NodeLab's status."""


class StatusApi(Protocol):
    """The one method of ``kubernetes.client.CustomObjectsApi`` this module needs."""

    def patch_namespaced_custom_object_status(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: Any,
        **kwargs: Any,
    ) -> Any:
        """Patch the status subresource of one custom object."""


def parse_report_to(value: str) -> tuple[str, str]:
    """Split ``NAMESPACE/NAME``; ValueError when either part is not a valid Kubernetes name."""
    namespace, slash, name = value.partition("/")
    if not slash or not namespace or not name:
        raise ValueError(f"expected NAMESPACE/NAME, got {value!r}")
    if len(namespace) > 63 or not _LABEL.match(namespace):
        raise ValueError(f"{namespace!r} is not a valid namespace name")
    if len(name) > 253 or not _SUBDOMAIN.match(name):
        raise ValueError(f"{name!r} is not a valid object name")
    return namespace, name


def is_retryable(exc: BaseException) -> bool:
    """Conflict, throttling, 5xx or a broken connection: worth another attempt."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status > 0:
        return status in RETRYABLE_STATUS or status >= 500
    # urllib3 raises its own errors (not OSError subclasses) for refused/reset connections.
    module = type(exc).__module__ or ""
    return isinstance(exc, OSError | TimeoutError) or module.startswith("urllib3")


def backoff_delays(
    attempts: int, base_s: float = 0.5, cap_s: float = 8.0, jitter: float = 0.0
) -> list[float]:
    """The waits between ``attempts`` tries: base, 2x base, 4x base... capped, +- jitter."""
    delays = []
    for attempt in range(max(0, attempts - 1)):
        delay = min(cap_s, base_s * 2**attempt)
        if jitter:
            delay *= 1 + random.uniform(-jitter, jitter)
        delays.append(delay)
    return delays


def report_patch(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON Patch that makes ``report`` the NodeLab's ``status.lastRun``, replacing any."""
    return [{"op": "add", "path": "/status/lastRun", "value": report}]


def patch_status(
    api: StatusApi,
    namespace: str,
    name: str,
    report: dict[str, Any],
    *,
    attempts: int = 6,
    delays: list[float] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Write ``report`` as ``status.lastRun`` (:func:`report_patch`); return the attempts taken.

    Retries only what :func:`is_retryable` allows; raises :class:`ReportError` on a final
    or non-retryable failure (a missing NodeLab, missing RBAC, a rejected body).
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    waits = delays if delays is not None else backoff_delays(attempts, jitter=0.2)
    body: Any = report_patch(report)
    content_type = JSON_PATCH
    for attempt in range(1, attempts + 1):
        try:
            api.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body,
                _content_type=content_type,
                _request_timeout=30,
            )
            return attempt
        except Exception as exc:
            if getattr(exc, "status", None) == 422 and content_type == JSON_PATCH:
                # No status to add to (a NodeLab the operator has not reconciled yet): a merge
                # patch creates it, and there is no earlier run whose keys could survive.
                body, content_type = {"status": {"lastRun": report}}, MERGE_PATCH
                if attempt < attempts:
                    continue
            if not is_retryable(exc) or attempt == attempts:
                raise ReportError(
                    f"could not patch {PLURAL}/{name} in {namespace} status "
                    f"(attempt {attempt} of {attempts}): {_describe(exc)}"
                ) from exc
            wait = waits[min(attempt - 1, len(waits) - 1)] if waits else 0.0
            log.warning("patching %s/%s status failed (%s); retrying", namespace, name, exc)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status:
        return f"HTTP {status} {reason or ''}".strip()
    return f"{type(exc).__name__}: {exc}"


def kubernetes_api(kubeconfig: str | None = None) -> StatusApi:
    """A ``CustomObjectsApi`` from the in-cluster config, else ``kubeconfig`` / $KUBECONFIG.

    The client gets its own configuration object, so nothing global is changed.
    """
    from kubernetes import client, config

    configuration = client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        load_incluster: Any = config.load_incluster_config  # untyped in some client versions
        load_incluster(client_configuration=configuration)
    else:
        # Read $KUBECONFIG now: the client reads it once, at import.
        path = kubeconfig or os.environ.get("KUBECONFIG") or None
        load_kubeconfig: Any = config.load_kube_config
        load_kubeconfig(config_file=path, client_configuration=configuration, persist_config=False)
    # Our own loop retries; urllib3's retries would multiply the attempts.
    configuration.retries = False
    return cast(StatusApi, client.CustomObjectsApi(client.ApiClient(configuration)))


def send_report(
    report: dict[str, Any],
    report_to: str,
    *,
    kubeconfig: str | None = None,
    attempts: int = 6,
) -> int:
    """Write ``report`` into the status of the NodeLab ``report_to`` (``NAMESPACE/NAME``)."""
    namespace, name = parse_report_to(report_to)
    try:
        api = kubernetes_api(kubeconfig)
    except Exception as exc:
        raise ReportError(f"no Kubernetes configuration: {exc}") from exc
    return patch_status(api, namespace, name, report, attempts=attempts)
