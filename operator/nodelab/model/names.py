"""Names and labels of everything the operator creates for a NodeLab, in one place."""

from __future__ import annotations

import re

from nodelab.model import crd

__all__ = [
    "COMPONENT_LABEL",
    "GENERATION_LABEL",
    "INSTANCE_LABEL",
    "LAB_NAME_PATTERN",
    "MANAGED_BY_LABEL",
    "MAX_LAB_NAME",
    "NAME_LABEL",
    "deployment",
    "generation_of",
    "headless_service",
    "load_job",
    "load_job_labels",
    "loadgen_account",
    "node_labels",
    "node_selector",
    "service",
    "validate_lab_name",
]

NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
GENERATION_LABEL = f"{crd.GROUP}/generation"

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
    """Labels selecting a lab's node pods (Deployment selector, Services)."""
    return {NAME_LABEL: "nodelab-node", INSTANCE_LABEL: lab}


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
