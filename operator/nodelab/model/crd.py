"""The NodeLab CRD as data: its names and its ``openAPIV3Schema``, read from the shipped YAML.

``manifests/crd/nodelab.yaml`` is the single source of truth; the package carries it as
``crd.yaml`` so the local runtime validates exactly what ``kubectl apply`` would.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

__all__ = ["GROUP", "KIND", "PLURAL", "VERSION", "api_version", "load_crd", "spec_schema"]

GROUP = "lab.nodelab.dev"
VERSION = "v1alpha1"
KIND = "NodeLab"
PLURAL = "nodelabs"


def api_version() -> str:
    """``lab.nodelab.dev/v1alpha1``: the apiVersion phase files must carry."""
    return f"{GROUP}/{VERSION}"


@functools.cache
def load_crd() -> dict[str, Any]:
    """Return the CRD document shipped with the package (parsed once)."""
    text = resources.files("nodelab.model").joinpath("crd.yaml").read_text(encoding="utf-8")
    crd: dict[str, Any] = yaml.safe_load(text)
    return crd


def spec_schema() -> dict[str, Any]:
    """Return the served version's ``openAPIV3Schema`` (the whole object: spec and status)."""
    for version in load_crd()["spec"]["versions"]:
        if version["name"] == VERSION:
            schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
            return schema
    raise LookupError(f"CRD has no version {VERSION}")
