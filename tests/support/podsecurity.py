"""Check a pod spec against the Pod Security Standard "restricted" profile, offline.

The checks follow https://kubernetes.io/docs/concepts/security/pod-security-standards/ (the
baseline controls, which "restricted" includes, then the restricted ones), as Pod Security
admission applies them at version "latest". Two project rules go further than the standard: every
container has CPU and memory requests and limits, and a read-only root filesystem.

The input is a pod spec as it appears in a manifest (camelCase keys), for example a Deployment's
``spec.template.spec``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "ALLOWED_VOLUME_TYPES",
    "SAFE_SYSCTLS",
    "pod_templates",
    "restricted_violations",
]

# "Volume Types" (restricted): every other volume source is refused.
ALLOWED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)

# "Sysctls" (baseline): the namespaced sysctls the standard calls safe.
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)

_SELINUX_TYPES = frozenset(
    {"container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
_SECCOMP_TYPES = frozenset({"RuntimeDefault", "Localhost"})
_APPARMOR_TYPES = frozenset({"RuntimeDefault", "Localhost"})
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_RESOURCE_NAMES = ("cpu", "memory")


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for kind in _CONTAINER_LISTS:
        for index, container in enumerate(pod_spec.get(kind) or []):
            yield f"{kind}[{index}] ({container.get('name', '?')})", container


def _effective(
    pod_ctx: Mapping[str, Any], ctx: Mapping[str, Any], key: str
) -> Any:  # a container's setting overrides the pod's
    return ctx[key] if ctx.get(key) is not None else pod_ctx.get(key)


def _pod_level(pod_spec: Mapping[str, Any]) -> Iterator[str]:
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            yield f"{field} must be unset or false"
    ctx = pod_spec.get("securityContext") or {}
    if (ctx.get("windowsOptions") or {}).get("hostProcess"):
        yield "securityContext.windowsOptions.hostProcess must be unset or false"
    if ctx.get("runAsUser") == 0:
        yield "securityContext.runAsUser must not be 0"
    for sysctl in ctx.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            yield f"securityContext.sysctls: {sysctl.get('name')!r} is not a safe sysctl"
    for volume in pod_spec.get("volumes") or []:
        sources = [k for k in volume if k != "name"]
        for source in sources:
            if source not in ALLOWED_VOLUME_TYPES:
                yield f"volumes[{volume.get('name')}]: volume type {source!r} is not allowed"
    yield from _selinux("securityContext", ctx)
    yield from _apparmor("securityContext", ctx)
    seccomp = (ctx.get("seccompProfile") or {}).get("type")
    if seccomp is not None and seccomp not in _SECCOMP_TYPES:
        yield (
            "securityContext.seccompProfile.type must be RuntimeDefault or Localhost, "
            f"not {seccomp}"
        )


def _selinux(where: str, ctx: Mapping[str, Any]) -> Iterator[str]:
    options = ctx.get("seLinuxOptions") or {}
    if options.get("type") not in (None, "", *_SELINUX_TYPES):
        yield f"{where}.seLinuxOptions.type {options['type']!r} is not allowed"
    for field in ("user", "role"):
        if options.get(field):
            yield f"{where}.seLinuxOptions.{field} must be unset"


def _apparmor(where: str, ctx: Mapping[str, Any]) -> Iterator[str]:
    profile = (ctx.get("appArmorProfile") or {}).get("type")
    if profile is not None and profile not in _APPARMOR_TYPES:
        yield f"{where}.appArmorProfile.type must be RuntimeDefault or Localhost, not {profile}"


def _container_level(
    pod_ctx: Mapping[str, Any], name: str, container: Mapping[str, Any], ephemeral: bool
) -> Iterator[str]:
    ctx = container.get("securityContext") or {}
    where = f"{name}.securityContext"
    if ctx.get("privileged"):
        yield f"{where}.privileged must be unset or false"
    if (ctx.get("windowsOptions") or {}).get("hostProcess"):
        yield f"{where}.windowsOptions.hostProcess must be unset or false"
    if ctx.get("procMount") not in (None, "Default"):
        yield f"{where}.procMount must be Default"
    if ctx.get("allowPrivilegeEscalation") is not False:
        yield f"{where}.allowPrivilegeEscalation must be false"
    if _effective(pod_ctx, ctx, "runAsNonRoot") is not True:
        yield f"{where}.runAsNonRoot must be true (here or in the pod's securityContext)"
    if ctx.get("runAsUser") == 0:
        yield f"{where}.runAsUser must not be 0"
    seccomp = (_effective(pod_ctx, ctx, "seccompProfile") or {}).get("type")
    if seccomp not in _SECCOMP_TYPES:
        yield (
            f"{where}.seccompProfile.type must be RuntimeDefault or Localhost (here or in the pod)"
        )
    capabilities = ctx.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        yield f"{where}.capabilities.drop must include ALL"
    for capability in capabilities.get("add") or []:
        if capability != "NET_BIND_SERVICE":
            yield f"{where}.capabilities.add may only contain NET_BIND_SERVICE, not {capability}"
    yield from _selinux(where, ctx)
    yield from _apparmor(where, ctx)
    for port in container.get("ports") or []:
        if port.get("hostPort"):
            yield f"{name}.ports: hostPort {port['hostPort']} is not allowed"
    # Project rules beyond the standard. Ephemeral (debug) containers cannot carry resources.
    if ctx.get("readOnlyRootFilesystem") is not True:
        yield f"{where}.readOnlyRootFilesystem must be true"
    if not ephemeral:
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            present = resources.get(section) or {}
            for resource in _RESOURCE_NAMES:
                if resource not in present:
                    yield f"{name}.resources.{section}.{resource} must be set"


def restricted_violations(pod_spec: Mapping[str, Any]) -> list[str]:
    """Return every way ``pod_spec`` breaks the "restricted" profile or the project's rules.

    An empty list means Pod Security admission at ``enforce: restricted`` would admit the pod,
    and that every container has CPU/memory requests and limits and a read-only root filesystem.
    Each message names the field, e.g.
    ``containers[0] (node).securityContext.allowPrivilegeEscalation must be false``.
    """
    violations = list(_pod_level(pod_spec))
    pod_ctx = pod_spec.get("securityContext") or {}
    for name, container in _containers(pod_spec):
        ephemeral = name.startswith("ephemeralContainers")
        violations.extend(_container_level(pod_ctx, name, container, ephemeral))
    if not pod_spec.get("containers"):
        violations.append("containers: a pod needs at least one container")
    return violations


def pod_templates(obj: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Yield ``(label, pod spec)`` for every pod an API object would create.

    Covers Pods, the workload kinds with ``spec.template`` (Deployment, Job, StatefulSet,
    DaemonSet, ReplicaSet) and CronJobs (``spec.jobTemplate.spec.template``).
    """
    kind = obj.get("kind", "?")
    name = (obj.get("metadata") or {}).get("name", "?")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        yield f"Pod/{name}", spec
    elif kind == "CronJob":
        yield f"CronJob/{name}", spec["jobTemplate"]["spec"]["template"]["spec"]
    elif "template" in spec:
        yield f"{kind}/{name}", spec["template"]["spec"]
