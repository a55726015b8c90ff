"""The Pod Security checker itself: a compliant pod passes, and each control is caught."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.podsecurity import pod_templates, restricted_violations

Pod = dict[str, Any]


def _good_pod() -> Pod:
    return {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "node",
                "image": "nodelab:dev",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "resources": {
                    "requests": {"cpu": "500m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "128Mi"},
                },
                "ports": [{"containerPort": 5001}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }


def _container(pod: Pod) -> dict[str, Any]:
    container: dict[str, Any] = pod["containers"][0]
    return container


def _ctx(pod: Pod) -> dict[str, Any]:
    ctx: dict[str, Any] = _container(pod)["securityContext"]
    return ctx


def test_a_compliant_pod_has_no_violations() -> None:
    assert restricted_violations(_good_pod()) == []


def test_container_level_settings_can_replace_the_pods() -> None:
    pod = _good_pod()
    del pod["securityContext"]
    _ctx(pod).update(runAsNonRoot=True, seccompProfile={"type": "Localhost"})
    assert restricted_violations(pod) == []


def test_net_bind_service_is_the_one_capability_that_may_be_added() -> None:
    pod = _good_pod()
    _ctx(pod)["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    assert restricted_violations(pod) == []


# (control, how to break it, words in the single violation expected)
BREAKS: list[tuple[str, Callable[[Pod], None], str]] = [
    ("hostNetwork", lambda p: p.update(hostNetwork=True), "hostNetwork"),
    ("hostPID", lambda p: p.update(hostPID=True), "hostPID"),
    ("hostIPC", lambda p: p.update(hostIPC=True), "hostIPC"),
    (
        "hostPath volume",
        lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "'hostPath' is not allowed",
    ),
    (
        "nfs volume",
        lambda p: p["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
        "'nfs'",
    ),
    ("privileged", lambda p: _ctx(p).update(privileged=True), "privileged"),
    ("hostPort", lambda p: _container(p)["ports"][0].update(hostPort=80), "hostPort 80"),
    (
        "privilege escalation unset",
        lambda p: _ctx(p).pop("allowPrivilegeEscalation"),
        "allowPrivilegeEscalation must be false",
    ),
    (
        "runAsNonRoot false",
        lambda p: p["securityContext"].update(runAsNonRoot=False),
        "runAsNonRoot",
    ),
    (
        "container overrides runAsNonRoot",
        lambda p: _ctx(p).update(runAsNonRoot=False),
        "runAsNonRoot",
    ),
    ("runAsUser 0", lambda p: _ctx(p).update(runAsUser=0), "runAsUser must not be 0"),
    (
        "pod runAsUser 0",
        lambda p: p["securityContext"].update(runAsUser=0),
        "runAsUser must not be 0",
    ),
    ("no seccomp", lambda p: p["securityContext"].pop("seccompProfile"), "seccompProfile"),
    (
        "container seccomp Unconfined",
        lambda p: _ctx(p).update(seccompProfile={"type": "Unconfined"}),
        "seccompProfile",
    ),
    ("capabilities not dropped", lambda p: _ctx(p).pop("capabilities"), "drop must include ALL"),
    (
        "capability added",
        lambda p: _ctx(p)["capabilities"].update(add=["NET_ADMIN"]),
        "not NET_ADMIN",
    ),
    ("procMount", lambda p: _ctx(p).update(procMount="Unmasked"), "procMount"),
    (
        "SELinux user",
        lambda p: _ctx(p).update(seLinuxOptions={"user": "system_u"}),
        "seLinuxOptions.user",
    ),
    (
        "SELinux type",
        lambda p: p["securityContext"].update(seLinuxOptions={"type": "spc_t"}),
        "seLinuxOptions.type",
    ),
    (
        "AppArmor unconfined",
        lambda p: _ctx(p).update(appArmorProfile={"type": "Unconfined"}),
        "appArmorProfile",
    ),
    (
        "unsafe sysctl",
        lambda p: p["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
        "kernel.msgmax",
    ),
    (
        "Windows host process",
        lambda p: _ctx(p).update(windowsOptions={"hostProcess": True}),
        "hostProcess",
    ),
    ("writable root", lambda p: _ctx(p).pop("readOnlyRootFilesystem"), "readOnlyRootFilesystem"),
    (
        "no CPU limit",
        lambda p: _container(p)["resources"]["limits"].pop("cpu"),
        "resources.limits.cpu",
    ),
    (
        "no memory request",
        lambda p: _container(p)["resources"]["requests"].pop("memory"),
        "resources.requests.memory",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "words"), [pytest.param(m, w, id=label) for label, m, w in BREAKS]
)
def test_each_control_is_checked(mutate: Callable[[Pod], None], words: str) -> None:
    pod = copy.deepcopy(_good_pod())
    mutate(pod)
    violations = restricted_violations(pod)
    assert len(violations) == 1, violations
    assert words in violations[0]


def test_init_containers_are_checked_too() -> None:
    pod = _good_pod()
    init = copy.deepcopy(_container(pod))
    init["name"] = "init"
    del init["securityContext"]["capabilities"]
    pod["initContainers"] = [init]
    assert restricted_violations(pod) == [
        "initContainers[0] (init).securityContext.capabilities.drop must include ALL"
    ]


def test_pod_templates_finds_the_pods_of_each_workload_kind() -> None:
    pod = _good_pod()
    deployment = {
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": pod}},
    }
    cron = {
        "kind": "CronJob",
        "metadata": {"name": "c"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": pod}}}},
    }
    service = {"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": []}}
    found = [label for obj in (deployment, cron, service) for label, _ in pod_templates(obj)]
    assert found == ["Deployment/d", "CronJob/c"]
