"""The NodeLab spec as typed values, parsed from a phase file or a custom resource.

Parsing validates first (``nodelab.model.validation``, against the CRD's schema and CEL rules), so
every value here is one the API server would have accepted, with its defaults filled in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nodelab.model import crd, names, quantity, validation

__all__ = [
    "DEFAULT_REQUESTS",
    "LoadSpec",
    "NodeLab",
    "NodeLabSpec",
    "NodeSpec",
    "SloSpec",
    "load_phase_file",
    "parse_nodelab",
    "parse_spec",
]

DEFAULT_REQUESTS = 50


@dataclass(frozen=True)
class NodeSpec:
    """The node fleet: ``replicas`` pods of ``workers`` processes each."""

    replicas: int
    workers: int
    cpu_per_worker: str
    memory_per_worker: str
    load_factor: int
    io_millis: int
    image: str | None = None

    @property
    def pod_cpu_millicores(self) -> int:
        """CPU request and limit of one pod: workers x cpuPerWorker."""
        return self.workers * quantity.cpu_millicores(self.cpu_per_worker)

    @property
    def pod_memory_mebibytes(self) -> float:
        """Memory request and limit of one pod: workers x memoryPerWorker."""
        return self.workers * quantity.memory_mebibytes(self.memory_per_worker)

    @property
    def capacity(self) -> int:
        """Requests the fleet serves at once: replicas x workers."""
        return self.replicas * self.workers


@dataclass(frozen=True)
class LoadSpec:
    """The load: a closed loop of ``concurrency`` clients, or an open loop at ``rate``."""

    concurrency: int
    requests: int | None
    duration_seconds: int | None
    rate: float | None
    sweep: tuple[int, ...]
    timeout_seconds: int
    processes: int
    path: str


@dataclass(frozen=True)
class SloSpec:
    """The objective a run is judged by."""

    p99_millis: int


@dataclass(frozen=True)
class NodeLabSpec:
    """A whole, validated, defaulted ``spec``."""

    node: NodeSpec
    load: LoadSpec
    slo: SloSpec


@dataclass(frozen=True)
class NodeLab:
    """A NodeLab resource: identity plus spec."""

    name: str
    namespace: str
    generation: int
    spec: NodeLabSpec


def _from_defaulted(spec: Mapping[str, Any]) -> NodeLabSpec:
    node, work, load = spec["node"], spec["node"]["work"], spec["load"]
    requests = load.get("requests")
    if requests is None and "durationSeconds" not in load:
        requests = DEFAULT_REQUESTS
    return NodeLabSpec(
        node=NodeSpec(
            replicas=node["replicas"],
            workers=node["workers"],
            cpu_per_worker=node["cpuPerWorker"],
            memory_per_worker=node["memoryPerWorker"],
            load_factor=work["loadFactor"],
            io_millis=work["ioMillis"],
            image=node.get("image") or None,
        ),
        load=LoadSpec(
            concurrency=load["concurrency"],
            requests=requests,
            duration_seconds=load.get("durationSeconds"),
            rate=float(load["rate"]) if load.get("rate") is not None else None,
            sweep=tuple(load.get("sweep", ())),
            timeout_seconds=load["timeoutSeconds"],
            processes=load["processes"],
            path=load["path"],
        ),
        slo=SloSpec(p99_millis=spec["slo"]["p99Millis"]),
    )


def parse_nodelab(document: Mapping[str, Any]) -> NodeLab:
    """Validate a whole NodeLab document (as in a phase file) and return it typed.

    Raises ``validation.SpecInvalid`` naming every invalid field.
    """
    metadata = document.get("metadata") or {}
    name = str(metadata.get("name") or "")
    errors: list[validation.FieldError] = []
    if document.get("apiVersion") != crd.api_version():
        errors.append(validation.FieldError("apiVersion", f"must be {crd.api_version()}"))
    if document.get("kind") != crd.KIND:
        errors.append(validation.FieldError("kind", f"must be {crd.KIND}"))
    if not name:
        errors.append(validation.FieldError("metadata.name", "Required value"))
    elif (problem := names.validate_lab_name(name)) is not None:
        errors.append(validation.FieldError("metadata.name", f"Invalid value: {name!r}: {problem}"))
    if errors:
        raise validation.SpecInvalid(name, errors)
    body = {k: v for k, v in document.items() if k != "status"}
    schema = crd.spec_schema()
    defaulted = validation.apply_defaults(body, schema)
    errors = validation.validate_object(defaulted, schema)
    if errors:
        raise validation.SpecInvalid(name, errors)
    return NodeLab(
        name=name,
        namespace=str(metadata.get("namespace") or "default"),
        generation=int(metadata.get("generation") or 1),
        spec=_from_defaulted(defaulted["spec"]),
    )


def parse_spec(spec: Mapping[str, Any], name: str = "") -> NodeLabSpec:
    """Validate a bare ``spec`` mapping (what the operator receives) and return it typed."""
    document = {
        "apiVersion": crd.api_version(),
        "kind": crd.KIND,
        "metadata": {"name": name or "nodelab"},
        "spec": dict(spec),
    }
    return parse_nodelab(document).spec


def load_phase_file(path: str | Path) -> NodeLab:
    """Read a phase file (one YAML document) and return its validated NodeLab."""
    text = Path(path).read_text(encoding="utf-8")
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise validation.SpecInvalid(
            str(path), [validation.FieldError("<file>", "expected exactly one NodeLab document")]
        )
    return parse_nodelab(documents[0])
