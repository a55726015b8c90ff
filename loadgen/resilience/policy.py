"""What a NodeLab spec says about retrying: the :class:`RetryPolicy` and its spec form.

The spec's ``retry`` block is camelCase, as everything stored in a Kubernetes object is::

    retry:
      kind: backoff            # none | immediate | backoff
      maxAttempts: 3           # first attempt included; exactly 1 with kind none
      baseMillis: 100          # backoff: the first retry waits up to this long
      capMillis: 2000          # backoff: no wait is longer
      budgetRatio: 0.1         # retries at most this share of first attempts (absent: no budget)
      honorRetryAfter: true    # wait at least what a 429 / 503's Retry-After asks
      breaker:                 # absent: no circuit breaker
        failureRatio: 0.5
        minCalls: 20
        openSeconds: 5
        probes: 3

A policy validates on construction, so a policy built in code and one parsed from a spec
give the same errors, each naming the spec field (``retry.capMillis ...``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast, get_args

__all__ = ["BreakerSettings", "PolicyError", "RetryKind", "RetryPolicy"]

RetryKind = Literal["none", "immediate", "backoff"]
_KINDS: tuple[str, ...] = get_args(RetryKind)
_PREFIX = "retry"


class PolicyError(ValueError):
    """A retry setting the load generator cannot use; ``field`` names it as the spec does."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name} {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class BreakerSettings:
    """A circuit breaker's settings (see :class:`loadgen.resilience.breaker.CircuitBreaker`)."""

    failure_ratio: float = 0.5
    min_calls: int = 20
    open_seconds: float = 5.0
    probes: int = 3

    def __post_init__(self) -> None:
        field = f"{_PREFIX}.breaker"
        ratio = self.failure_ratio
        if not _is_number(ratio) or not 0 < ratio <= 1:
            raise PolicyError(f"{field}.failureRatio", f"must be in (0, 1], got {ratio!r}")
        _positive_int(f"{field}.minCalls", self.min_calls)
        _positive_number(f"{field}.openSeconds", self.open_seconds)
        _positive_int(f"{field}.probes", self.probes)

    @classmethod
    def parse(cls, mapping: object) -> BreakerSettings:
        """Settings from the spec's ``retry.breaker`` mapping; absent keys take the defaults."""
        values = _fields(f"{_PREFIX}.breaker", mapping, _BREAKER_KEYS)
        return cls(**values)  # type: ignore[arg-type]  # each value is checked on construction

    def to_mapping(self) -> dict[str, object]:
        """The spec's ``retry.breaker`` mapping for these settings."""
        return {
            "failureRatio": self.failure_ratio,
            "minCalls": self.min_calls,
            "openSeconds": self.open_seconds,
            "probes": self.probes,
        }


@dataclass(frozen=True)
class RetryPolicy:
    """How a load client retries a failed request; the default never retries.

    ``max_attempts`` counts the first attempt: a policy that retries (``immediate`` or
    ``backoff``) needs at least 2, and ``none`` exactly 1, so a spec cannot say both.
    ``base_millis`` and ``cap_millis`` shape the ``backoff`` kind's waits (full jitter).
    """

    kind: RetryKind = "none"
    max_attempts: int = 1
    base_millis: float = 100
    cap_millis: float = 2000
    budget_ratio: float | None = None
    honor_retry_after: bool = False
    breaker: BreakerSettings | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise PolicyError(
                f"{_PREFIX}.kind", f"must be one of {', '.join(_KINDS)}; got {self.kind!r}"
            )
        _positive_int(f"{_PREFIX}.maxAttempts", self.max_attempts)
        if self.kind == "none" and self.max_attempts != 1:
            raise PolicyError(
                f"{_PREFIX}.maxAttempts",
                f"must be 1 when {_PREFIX}.kind is none (got {self.max_attempts})",
            )
        if self.kind != "none" and self.max_attempts < 2:
            raise PolicyError(
                f"{_PREFIX}.maxAttempts",
                f"must be >= 2 when {_PREFIX}.kind is {self.kind} (1 attempt never retries)",
            )
        _positive_number(f"{_PREFIX}.baseMillis", self.base_millis)
        _positive_number(f"{_PREFIX}.capMillis", self.cap_millis)
        if self.cap_millis < self.base_millis:
            raise PolicyError(
                f"{_PREFIX}.capMillis",
                f"must be >= {_PREFIX}.baseMillis ({self.base_millis!r}), got {self.cap_millis!r}",
            )
        ratio = self.budget_ratio
        if ratio is not None and (not _is_number(ratio) or not 0 <= ratio <= 1):
            raise PolicyError(f"{_PREFIX}.budgetRatio", f"must be in [0, 1], got {ratio!r}")
        if not isinstance(self.honor_retry_after, bool):
            raise PolicyError(
                f"{_PREFIX}.honorRetryAfter",
                f"must be true or false, got {self.honor_retry_after!r}",
            )
        if self.breaker is not None and not isinstance(self.breaker, BreakerSettings):
            raise PolicyError(
                f"{_PREFIX}.breaker", f"must be breaker settings, got {self.breaker!r}"
            )

    @property
    def retries(self) -> bool:
        """Whether the policy ever retries."""
        return self.kind != "none"

    @classmethod
    def parse(cls, mapping: object) -> RetryPolicy:
        """The policy a spec's ``retry`` mapping describes; absent keys take the defaults.

        Raises :class:`PolicyError` naming the first bad field, unknown keys included.
        """
        values = _fields(_PREFIX, mapping, _POLICY_KEYS)
        breaker = values.get("breaker")
        if breaker is not None:
            values["breaker"] = BreakerSettings.parse(breaker)
        return cls(**values)  # type: ignore[arg-type]  # each value is checked on construction

    def to_mapping(self) -> dict[str, object]:
        """The spec's ``retry`` mapping for this policy (``parse`` of it gives it back).

        ``budgetRatio`` and ``breaker`` appear only when set.
        """
        mapping: dict[str, object] = {
            "kind": self.kind,
            "maxAttempts": self.max_attempts,
            "baseMillis": self.base_millis,
            "capMillis": self.cap_millis,
            "honorRetryAfter": self.honor_retry_after,
        }
        if self.budget_ratio is not None:
            mapping["budgetRatio"] = self.budget_ratio
        if self.breaker is not None:
            mapping["breaker"] = self.breaker.to_mapping()
        return mapping


# Spec key -> dataclass field.
_POLICY_KEYS = {
    "kind": "kind",
    "maxAttempts": "max_attempts",
    "baseMillis": "base_millis",
    "capMillis": "cap_millis",
    "budgetRatio": "budget_ratio",
    "honorRetryAfter": "honor_retry_after",
    "breaker": "breaker",
}
_BREAKER_KEYS = {
    "failureRatio": "failure_ratio",
    "minCalls": "min_calls",
    "openSeconds": "open_seconds",
    "probes": "probes",
}


def _fields(name: str, mapping: object, keys: Mapping[str, str]) -> dict[str, object]:
    """The dataclass keyword arguments for a spec mapping; a null value is an absent key."""
    if not isinstance(mapping, Mapping):
        raise PolicyError(name, f"must be a mapping, got {mapping!r}")
    values: dict[str, object] = {}
    for key, value in cast(Mapping[object, object], mapping).items():
        if not isinstance(key, str) or key not in keys:
            raise PolicyError(f"{name}.{key}", f"is not a setting (known: {', '.join(keys)})")
        if value is not None:
            values[keys[key]] = value
    return values


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyError(name, f"must be an integer >= 1, got {value!r}")


def _positive_number(name: str, value: object) -> None:
    if not _is_number(value) or cast(float, value) <= 0:
        raise PolicyError(name, f"must be a positive number, got {value!r}")
