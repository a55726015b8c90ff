"""The spec's retry block: parsed, written back, and every bad field named in its error."""

from __future__ import annotations

from typing import Any

import pytest

from loadgen.resilience.policy import BreakerSettings, PolicyError, RetryPolicy

FULL = {
    "kind": "backoff",
    "maxAttempts": 4,
    "baseMillis": 50,
    "capMillis": 1500,
    "budgetRatio": 0.2,
    "honorRetryAfter": True,
    "breaker": {"failureRatio": 0.6, "minCalls": 10, "openSeconds": 2.5, "probes": 1},
}


def test_a_full_block_parses_into_every_field() -> None:
    policy = RetryPolicy.parse(FULL)
    assert policy == RetryPolicy(
        kind="backoff",
        max_attempts=4,
        base_millis=50,
        cap_millis=1500,
        budget_ratio=0.2,
        honor_retry_after=True,
        breaker=BreakerSettings(failure_ratio=0.6, min_calls=10, open_seconds=2.5, probes=1),
    )
    assert policy.retries


def test_to_mapping_is_the_spec_block_it_came_from() -> None:
    assert RetryPolicy.parse(FULL).to_mapping() == FULL


@pytest.mark.parametrize(
    "policy",
    [
        RetryPolicy(),
        RetryPolicy(kind="immediate", max_attempts=3),
        RetryPolicy(kind="backoff", max_attempts=2, base_millis=0.5, cap_millis=0.5),
        RetryPolicy(kind="none", budget_ratio=0.0, breaker=BreakerSettings()),
        RetryPolicy.parse(FULL),
    ],
)
def test_parse_and_to_mapping_round_trip(policy: RetryPolicy) -> None:
    assert RetryPolicy.parse(policy.to_mapping()) == policy


def test_an_empty_block_never_retries() -> None:
    policy = RetryPolicy.parse({})
    assert policy == RetryPolicy()
    assert (policy.kind, policy.max_attempts, policy.retries) == ("none", 1, False)
    assert policy.budget_ratio is None
    assert policy.breaker is None


def test_absent_and_null_settings_take_the_defaults() -> None:
    policy = RetryPolicy.parse(
        {"kind": "backoff", "maxAttempts": 3, "budgetRatio": None, "breaker": {}}
    )
    assert policy.budget_ratio is None
    assert policy.breaker == BreakerSettings()
    assert RetryPolicy.parse({"breaker": None}).breaker is None
    # No budget and no breaker: the keys stay out of the spec form.
    assert set(RetryPolicy().to_mapping()) == {
        "kind",
        "maxAttempts",
        "baseMillis",
        "capMillis",
        "honorRetryAfter",
    }


@pytest.mark.parametrize(
    ("block", "field", "says"),
    [
        ({"kind": "exponential"}, "retry.kind", "must be one of none, immediate, backoff"),
        ({"kind": "backoff", "maxAttempts": 0}, "retry.maxAttempts", "must be an integer >= 1"),
        ({"kind": "backoff", "maxAttempts": 2.0}, "retry.maxAttempts", "must be an integer"),
        ({"kind": "backoff", "maxAttempts": True}, "retry.maxAttempts", "must be an integer"),
        ({"kind": "none", "maxAttempts": 3}, "retry.maxAttempts", "must be 1 when retry.kind"),
        ({"kind": "backoff"}, "retry.maxAttempts", "must be >= 2 when retry.kind is backoff"),
        ({"baseMillis": 0}, "retry.baseMillis", "must be a positive number"),
        ({"baseMillis": "100"}, "retry.baseMillis", "must be a positive number"),
        ({"capMillis": -1}, "retry.capMillis", "must be a positive number"),
        ({"baseMillis": 500, "capMillis": 100}, "retry.capMillis", "must be >= retry.baseMillis"),
        ({"budgetRatio": 1.5}, "retry.budgetRatio", "must be in [0, 1]"),
        ({"budgetRatio": float("nan")}, "retry.budgetRatio", "must be in [0, 1]"),
        ({"honorRetryAfter": "yes"}, "retry.honorRetryAfter", "must be true or false"),
        ({"breaker": 3}, "retry.breaker", "must be a mapping"),
        ({"breaker": {"failureRatio": 0}}, "retry.breaker.failureRatio", "must be in (0, 1]"),
        ({"breaker": {"minCalls": 0}}, "retry.breaker.minCalls", "must be an integer >= 1"),
        ({"breaker": {"openSeconds": 0}}, "retry.breaker.openSeconds", "must be a positive"),
        ({"breaker": {"probes": 1.5}}, "retry.breaker.probes", "must be an integer >= 1"),
        ({"breaker": {"probe": 1}}, "retry.breaker.probe", "is not a setting"),
        ({"maxAttempt": 3}, "retry.maxAttempt", "is not a setting"),
    ],
)
def test_each_bad_field_is_named_in_its_error(block: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(PolicyError) as caught:
        RetryPolicy.parse(block)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field} {says}")
    assert isinstance(caught.value, ValueError)


def test_the_cap_error_reads_as_the_spec_would_say_it() -> None:
    with pytest.raises(PolicyError, match=r"^retry\.capMillis must be >= retry\.baseMillis"):
        RetryPolicy(kind="backoff", max_attempts=3, base_millis=200, cap_millis=100)


def test_a_block_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(PolicyError, match=r"^retry must be a mapping"):
        RetryPolicy.parse(["kind", "backoff"])


def test_policies_are_frozen_and_hashable() -> None:
    policy = RetryPolicy.parse(FULL)
    with pytest.raises(AttributeError):
        policy.kind = "none"  # type: ignore[misc]
    assert len({policy, RetryPolicy.parse(FULL)}) == 1
