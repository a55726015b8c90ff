"""JSON Schema of the load report (schemaVersion 1); docs/load-report.md explains each field.

Kept in code so tests and other components (the operator reads ``status.lastRun``) can
validate a report with ``jsonschema`` without reading files at run time.
"""

from __future__ import annotations

from typing import Any

from loadgen.balancing import STRATEGIES

__all__ = ["REPORT_SCHEMA"]

_MILLIS: dict[str, Any] = {"type": "number", "minimum": 0}
_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_VERDICT: dict[str, Any] = {"enum": ["OK", "Crashed", "Errors"]}


def _object(properties: dict[str, Any], *, nullable: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": ["object", "null"] if nullable else "object",
        "required": sorted(properties),
        "additionalProperties": False,
        "properties": properties,
    }
    return schema


REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "NodeLab load report",
    **_object(
        {
            "schemaVersion": {"const": 1},
            "generation": {"type": ["integer", "null"]},
            "startedAt": {"type": "string", "format": "date-time"},
            "finishedAt": {"type": "string", "format": "date-time"},
            "mode": {"enum": ["closed", "open"]},
            "path": {"type": "string", "pattern": "^/"},
            "targets": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "concurrency": {"type": "integer", "minimum": 1},
            "rate": {"type": ["number", "null"], "exclusiveMinimum": 0},
            "processes": {"type": "integer", "minimum": 1},
            "balancing": {"enum": list(STRATEGIES)},
            "durationSeconds": {"type": "number", "minimum": 0},
            "scheduled": {"type": ["integer", "null"], "minimum": 1},
            "requests": _COUNT,
            "successes": _COUNT,
            "errors": _object(
                {
                    "total": _COUNT,
                    "byKind": {
                        "type": "object",
                        "propertyNames": {
                            "pattern": "^(connect|down|not_sent|timeout|other|http_[0-9]{3}"
                            "|gave_up|breaker_open|refused)$"
                        },
                        "additionalProperties": _COUNT,
                    },
                }
            ),
            "rps": {"type": "number", "minimum": 0},
            "latencyMillis": _object(
                {key: _MILLIS for key in ("min", "p50", "p90", "p95", "p99", "max", "mean")}
            ),
            "serviceMillis": _object({"p50": _MILLIS, "mean": _MILLIS}, nullable=True),
            "perNode": {
                "type": "array",
                "items": _object(
                    {
                        "node": {"type": "string"},
                        "target": {"type": "string"},
                        "requests": _COUNT,
                        "successes": _COUNT,
                        "errors": _COUNT,
                        "share": {"type": "number", "minimum": 0, "maximum": 1},
                        "rps": {"type": "number", "minimum": 0},
                        "latencyMillis": _object({"p50": _MILLIS, "p99": _MILLIS, "max": _MILLIS}),
                    }
                ),
            },
            "targetsDown": {
                "type": "array",
                "items": _object(
                    {
                        "target": {"type": "string"},
                        "wentAway": {"type": "boolean"},
                        "failedConnects": {"type": "integer", "minimum": 1},
                    }
                ),
            },
            "calibration": _object(
                {
                    "requests": _COUNT,
                    "serviceMillis": {"type": ["number", "null"], "minimum": 0},
                    "latencyMillis": {"type": ["number", "null"], "minimum": 0},
                },
                nullable=True,
            ),
            "sweep": {
                "type": ["array", "null"],
                "items": _object(
                    {
                        "concurrency": {"type": "integer", "minimum": 1},
                        "requests": _COUNT,
                        "rps": {"type": "number", "minimum": 0},
                        "p50Millis": _MILLIS,
                        "p99Millis": _MILLIS,
                        "verdict": _VERDICT,
                    }
                ),
            },
            "breakingConcurrency": {"type": ["integer", "null"], "minimum": 1},
            "sloP99Millis": {"type": "number", "exclusiveMinimum": 0},
            "verdict": _VERDICT,
            "histogram": {"type": "string"},
        }
    ),
}

# A storm run's own fields (docs/load-report.md, "The storm run"): present only in its report.
_RATIO: dict[str, Any] = {"type": "number", "minimum": 0}
_POINT: dict[str, Any] = {
    "type": "object",
    "required": ["t", "offered", "attempts", "successes"],
    "additionalProperties": False,
    "properties": {
        "t": _COUNT,
        "offered": _RATIO,
        "attempts": _RATIO,
        "successes": _RATIO,
        "errors": {"type": "object", "additionalProperties": _RATIO},
        "p50Millis": _MILLIS,
        "p99Millis": _MILLIS,
        "breaker": {"enum": ["closed", "open", "half-open"]},
    },
}
_WINDOW: dict[str, Any] = {
    "type": ["object", "null"],
    "required": ["startSeconds", "endSeconds"],
    "properties": {"startSeconds": _RATIO, "endSeconds": _RATIO},
}
REPORT_SCHEMA["properties"].update(
    {
        "timeline": {
            "type": "object",
            "required": ["secondsPerPoint", "points"],
            "additionalProperties": False,
            "properties": {
                "secondsPerPoint": {"type": "integer", "minimum": 1},
                "points": {"type": "array", "maxItems": 120, "items": _POINT},
            },
        },
        "storm": {
            "type": "object",
            "required": ["recovered", "verdict", "triggerWindow", "offered", "attempts"],
            "properties": {
                "recovered": {"type": "boolean"},
                "verdict": {"enum": ["Recovered", "DidNotRecover", "NoTrigger"]},
                "triggerWindow": _WINDOW,
                "amplification": _RATIO,
                "triggerAmplification": _RATIO,
                "goodputDuringTrigger": _RATIO,
                "goodputAfterTrigger": _RATIO,
                "recoverySeconds": _COUNT,
                "offered": _COUNT,
                "attempts": _COUNT,
                "retries": _COUNT,
                "attemptErrors": {"type": "object", "additionalProperties": _COUNT},
                "inFlightCap": _COUNT,
                "peakInFlight": _COUNT,
                "breaker": _object({"transitions": _COUNT, "rejected": _COUNT}),
                "budgetDenied": _COUNT,
            },
        },
        "retry": {"type": "object"},
        "trigger": {
            "type": ["object", "null"],
            "required": ["startSeconds", "endSeconds", "durationSeconds", "mode"],
            "properties": {"mode": {"enum": ["slow", "fail"]}},
        },
    }
)
