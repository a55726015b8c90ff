"""The NodeLab spec as typed values, parsed from a phase file or a custom resource.

Parsing validates first (``nodelab.model.validation``, against the CRD's schema and CEL rules), so
every value here is one the API server would have accepted, with its defaults filled in. The
blocks of the later phases (``protection``, ``trigger``, ``retry``, ``slowPool``) are optional:
absent, their field is None and the lab behaves as in phases 1-4. ``spec.load.retry`` is parsed by
the load generator's own :meth:`loadgen.resilience.RetryPolicy.parse`, so the spec and the
client cannot disagree on what a retry policy is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from loadgen.resilience import PolicyError, RetryPolicy
from nodelab.model import crd, names, quantity, validation

__all__ = [
    "DEFAULT_REQUESTS",
    "Balancing",
    "FaultMode",
    "LoadSpec",
    "NodeLab",
    "NodeLabSpec",
    "NodeSpec",
    "ProtectionSpec",
    "SloSpec",
    "SlowPoolSpec",
    "TriggerSpec",
    "load_phase_file",
    "parse_nodelab",
    "parse_spec",
    "retry_field_error",
]

DEFAULT_REQUESTS = 50

# spec.load.balancing, as the CRD's enum spells it.
Balancing = Literal["round-robin", "random", "least-outstanding", "p2c", "peak-ewma"]
# spec.trigger.mode: as the node's POST /fault spells it.
FaultMode = Literal["slow", "fail"]


@dataclass(frozen=True)
class ProtectionSpec:
    """What each worker process of a node refuses (phase 5): a bounded queue and a rate limit.

    ``max_queue`` 0 is unbounded; ``rate_limit`` None is no limit, and ``rate_burst`` None one
    second's worth of it.
    """

    max_queue: int = 0
    retry_after_seconds: int = 1
    rate_limit: float | None = None
    rate_burst: int | None = None


@dataclass(frozen=True)
class SlowPoolSpec:
    """Phase 6's unequal fleet: ``replicas`` of the pods are slow, by a factor, a delay or both."""

    replicas: int
    service_factor: float | None = None
    extra_millis: int | None = None


@dataclass(frozen=True)
class TriggerSpec:
    """Phase 5's incident window, in seconds from the start of the load.

    ``extra_millis`` is set (and only set) for mode ``slow``; ``status`` is what mode ``fail``
    answers.
    """

    start_seconds: float
    duration_seconds: float
    mode: FaultMode
    extra_millis: int | None = None
    status: int = 503

    @property
    def end_seconds(self) -> float:
        """When the window closes, in seconds from the start of the load."""
        return self.start_seconds + self.duration_seconds


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
    protection: ProtectionSpec | None = None
    slow_pool: SlowPoolSpec | None = None

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
    """The load: a closed loop of ``concurrency`` clients, or an open loop at ``rate``.

    ``balancing`` spreads the requests over the node pods; ``retry`` None never retries.
    """

    concurrency: int
    requests: int | None
    duration_seconds: int | None
    rate: float | None
    sweep: tuple[int, ...]
    timeout_seconds: int
    processes: int
    path: str
    balancing: Balancing = "round-robin"
    retry: RetryPolicy | None = None


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
    trigger: TriggerSpec | None = None


@dataclass(frozen=True)
class NodeLab:
    """A NodeLab resource: identity plus spec."""

    name: str
    namespace: str
    generation: int
    spec: NodeLabSpec


def _optional_float(mapping: Mapping[str, Any], key: str) -> float | None:
    value = mapping.get(key)
    return None if value is None else float(value)


def _protection(protection: Mapping[str, Any] | None) -> ProtectionSpec | None:
    if protection is None:
        return None
    return ProtectionSpec(
        max_queue=protection["maxQueue"],
        retry_after_seconds=protection["retryAfterSeconds"],
        rate_limit=_optional_float(protection, "rateLimit"),
        rate_burst=protection.get("rateBurst"),
    )


def _slow_pool(pool: Mapping[str, Any] | None) -> SlowPoolSpec | None:
    if pool is None:
        return None
    return SlowPoolSpec(
        replicas=pool["replicas"],
        service_factor=_optional_float(pool, "serviceFactor"),
        extra_millis=pool.get("extraMillis"),
    )


def _trigger(trigger: Mapping[str, Any] | None) -> TriggerSpec | None:
    if trigger is None:
        return None
    return TriggerSpec(
        start_seconds=float(trigger["startSeconds"]),
        duration_seconds=float(trigger["durationSeconds"]),
        mode=trigger["mode"],
        extra_millis=trigger.get("extraMillis"),
        status=trigger["status"],
    )


def _retry(retry: Mapping[str, Any] | None) -> RetryPolicy | None:
    """The load generator's policy for ``spec.load.retry``; raises ``PolicyError``."""
    return None if retry is None else RetryPolicy.parse(retry)


def retry_field_error(error: PolicyError) -> validation.FieldError:
    """A retry policy's complaint as a spec field error: ``retry.capMillis`` is under spec.load."""
    return validation.FieldError(f"spec.load.{error.field}", f"Invalid value: {error.message}")


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
            protection=_protection(node.get("protection")),
            slow_pool=_slow_pool(node.get("slowPool")),
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
            balancing=load["balancing"],
            retry=_retry(load.get("retry")),
        ),
        slo=SloSpec(p99_millis=spec["slo"]["p99Millis"]),
        trigger=_trigger(spec.get("trigger")),
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
    try:
        typed = _from_defaulted(defaulted["spec"])
    except PolicyError as exc:
        # The CRD's rules mirror RetryPolicy's, so this is a rule the CRD lacks: still refused.
        raise validation.SpecInvalid(name, [retry_field_error(exc)]) from exc
    return NodeLab(
        name=name,
        namespace=str(metadata.get("namespace") or "default"),
        generation=int(metadata.get("generation") or 1),
        spec=typed,
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
