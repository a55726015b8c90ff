"""The few Kubernetes quantities NodeLab uses: CPU in millicores, memory in Ki/Mi/Gi."""

from __future__ import annotations

import re

__all__ = ["cpu_millicores", "format_cpu", "format_memory", "memory_mebibytes"]

_CPU = re.compile(r"^(?:(?P<milli>[0-9]+)m|(?P<cores>[0-9]+(?:\.[0-9]{1,3})?))$")
_MEMORY = re.compile(r"^(?P<number>[0-9]+)(?P<unit>Ki|Mi|Gi)$")
_MEBI_PER_UNIT = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}


def cpu_millicores(quantity: str) -> int:
    """``"500m"`` -> 500, ``"1.5"`` -> 1500. Raises ValueError on anything else."""
    match = _CPU.match(quantity)
    if not match:
        raise ValueError(f"not a CPU quantity: {quantity!r}")
    if match["milli"] is not None:
        return int(match["milli"])
    return round(float(match["cores"]) * 1000)


def format_cpu(millicores: int) -> str:
    """Render millicores as Kubernetes does: whole cores as ``"5"``, else ``"2500m"``."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def memory_mebibytes(quantity: str) -> float:
    """``"128Mi"`` -> 128.0, ``"1Gi"`` -> 1024.0."""
    match = _MEMORY.match(quantity)
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return int(match["number"]) * _MEBI_PER_UNIT[match["unit"]]


def format_memory(mebibytes: float) -> str:
    """Render mebibytes as a quantity: ``"1280Mi"`` (rounded up to whole Mi)."""
    whole = int(mebibytes) if mebibytes == int(mebibytes) else int(mebibytes) + 1
    return f"{whole}Mi"
