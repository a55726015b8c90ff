"""Names and labels of everything the operator creates for a NodeLab, in one place."""

from __future__ import annotations

import re

from nodelab.model import crd

__all__ = [
    "COMPONENT_LABEL",
    "FAULT_TOKEN_KEY",
    "GENERATION_LABEL",
    "INSTANCE_LABEL",
    "LAB_NAME_PATTERN",
    "MANAGED_BY_LABEL",
    "MAX_LAB_NAME",
    "NAME_LABEL",
    "NODE_APP",
    "SLOW_NODE_APP",
    "deployment",
    "fault_token_secret",
    "generation_of",
    "headless_service",
    "load_job",
    "load_job_labels",
    "loadgen_account",
    "node_labels",
    "node_pods_selector",
    "node_selector",
    "service",
    "slow_deployment",
    "slow_node_selector",
    "validate_lab_name",
]

NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
GENERATION_LABEL = f"{crd.GROUP}/generation"

# The app.kubernetes.io/name of the fast node pods (and of every node Deployment and Service),
# and of the slow pool's pods (phase 6). Different names, because the node Deployment's selector
# (immutable) is name + instance: a slow pod with the fast pods' name would be counted as one of
# the fast Deployment's own, and the two ReplicaSets would fight over it.
NODE_APP = "nodelab-node"
SLOW_NODE_APP = "nodelab-node-slow"
# The Secret key holding the fault token (phase 5), and so the file name it is mounted as.
FAULT_TOKEN_KEY = "token"

# Children are named "<lab>-<suffix>" and Services must be DNS-1035 labels (63 characters);
# the longest suffix is "-node-headless" (14) and "-load-g<generation>" stays under 23.
MAX_LAB_NAME = 40
# A DNS-1035 label: a NodeLab may be named "1lab" or "lab.v2" (a DNS subdomain), its Services not.
# The CRD's root CEL rule carries the same pattern and length.
LAB_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


def validate_lab_name(name: str) -> str | None:
    """Why ``name`` cannot name a lab (every child's name derives from it), or None if it can."""
    if len(name) <= MAX_LAB_NAME and re.fullmatch(LAB_NAME_PATTERN, name):
        return None
    return (
        f"must be a DNS-1035 label of at most {MAX_LAB_NAME} characters: lowercase letters, "
        "digits and '-', starting with a letter and ending with a letter or digit "
        "(the lab's Services and Jobs are named after it)"
    )


def deployment(lab: str) -> str:
    """The Deployment running the node pods."""
    return f"{lab}-node"


def slow_deployment(lab: str) -> str:
    """The Deployment running the slow pool's node pods (phase 6, ``spec.node.slowPool``)."""
    return f"{lab}-node-slow"


def fault_token_secret(lab: str) -> str:
    """The Secret holding the fault token the nodes and the load Job share (phase 5)."""
    return f"{lab}-fault-token"


def service(lab: str) -> str:
    """The ClusterIP Service in front of the node pods."""
    return f"{lab}-node"


def headless_service(lab: str) -> str:
    """The headless Service: one DNS record per ready pod, so the load reports per pod."""
    return f"{lab}-node-headless"


def load_job(lab: str, generation: int) -> str:
    """The load Job of one spec generation: one per generation, named by it."""
    return f"{lab}-load-g{generation}"


def loadgen_account(lab: str) -> str:
    """ServiceAccount, Role and RoleBinding the load Job reports with."""
    return f"{lab}-loadgen"


def node_selector(lab: str) -> dict[str, str]:
    """The (fast) node Deployment's selector, and labels of the objects a lab's nodes are."""
    return {NAME_LABEL: NODE_APP, INSTANCE_LABEL: lab}


def slow_node_selector(lab: str) -> dict[str, str]:
    """The slow node Deployment's selector: no fast pod matches it, nor a slow pod the fast one."""
    return {NAME_LABEL: SLOW_NODE_APP, INSTANCE_LABEL: lab}


def node_pods_selector(lab: str) -> dict[str, str]:
    """Labels every node pod of a lab carries, fast or slow: the Services select on these."""
    return {INSTANCE_LABEL: lab, COMPONENT_LABEL: "node"}


def node_labels(lab: str, generation: int) -> dict[str, str]:
    """Labels of the node Deployment and Services."""
    return {
        **node_selector(lab),
        COMPONENT_LABEL: "node",
        MANAGED_BY_LABEL: "nodelab-operator",
        GENERATION_LABEL: str(generation),
    }


def load_job_labels(lab: str, generation: int) -> dict[str, str]:
    """Labels of a load Job and its pod."""
    return {
        NAME_LABEL: "nodelab-load",
        INSTANCE_LABEL: lab,
        COMPONENT_LABEL: "load",
        MANAGED_BY_LABEL: "nodelab-operator",
        GENERATION_LABEL: str(generation),
    }


def generation_of(labels: dict[str, str] | None) -> int | None:
    """The lab generation an object was built for, from its labels (None if absent)."""
    value = (labels or {}).get(GENERATION_LABEL)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
