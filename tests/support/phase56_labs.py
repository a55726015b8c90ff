"""NodeLab documents of phases 5 and 6 for the operator's tests, independent of the shipped
phase files (``manifests/phases/phase-5*``/``phase-6*``, which the tour's measurements tune):
a storm lab with every phase 5 block (protection, retry with budget and breaker, a trigger) and
a balancing lab with a slow pool. Small work per request, so they run on a shared machine too.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["balancing_lab", "storm_lab"]

_STORM: dict[str, Any] = {
    "apiVersion": "lab.nodelab.dev/v1alpha1",
    "kind": "NodeLab",
    "metadata": {"name": "storm-lab"},
    "spec": {
        "node": {
            "replicas": 2,
            "workers": 2,
            "cpuPerWorker": "250m",
            "work": {"loadFactor": 20, "ioMillis": 50},
            "protection": {"maxQueue": 4, "retryAfterSeconds": 1, "rateLimit": 40, "rateBurst": 10},
        },
        "load": {
            "concurrency": 50,
            "rate": 20,
            "durationSeconds": 20,
            "timeoutSeconds": 2,
            "retry": {
                "kind": "backoff",
                "maxAttempts": 3,
                "baseMillis": 100,
                "capMillis": 1000,
                "budgetRatio": 0.1,
                "honorRetryAfter": True,
                "breaker": {"failureRatio": 0.5, "minCalls": 20, "openSeconds": 2, "probes": 3},
            },
        },
        "trigger": {"startSeconds": 5, "durationSeconds": 5, "mode": "slow", "extraMillis": 1000},
        "slo": {"p99Millis": 1000},
    },
}

_BALANCING: dict[str, Any] = {
    "apiVersion": "lab.nodelab.dev/v1alpha1",
    "kind": "NodeLab",
    "metadata": {"name": "balancing-lab"},
    "spec": {
        "node": {
            "replicas": 3,
            "workers": 2,
            "cpuPerWorker": "250m",
            "work": {"loadFactor": 20, "ioMillis": 50},
            "slowPool": {"replicas": 1, "serviceFactor": 5},
        },
        "load": {"concurrency": 12, "requests": 300, "balancing": "least-outstanding"},
        "slo": {"p99Millis": 1000},
    },
}


def storm_lab() -> dict[str, Any]:
    """Phase 5: shedding, a rate limit, backoff with a budget and a breaker, a slow window."""
    return copy.deepcopy(_STORM)


def balancing_lab() -> dict[str, Any]:
    """Phase 6: three pods, one of them five times slower, balanced by least-outstanding."""
    return copy.deepcopy(_BALANCING)
