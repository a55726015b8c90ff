"""NodeLab documents built in tests: a minimal lab around the spec blocks a test cares about."""

from __future__ import annotations

from typing import Any

__all__ = ["lab_document"]


def lab_document(name: str = "lab", **spec_body: Any) -> dict[str, Any]:
    """A NodeLab named ``name`` whose spec is ``spec_body`` over empty ``node`` and ``load``."""
    body: dict[str, Any] = {"node": {}, "load": {}}
    body.update(spec_body)
    return {
        "apiVersion": "lab.nodelab.dev/v1alpha1",
        "kind": "NodeLab",
        "metadata": {"name": name},
        "spec": body,
    }
