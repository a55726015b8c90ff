"""The spec fields of phase 5 (the retry storm) and phase 6 (fast and slow nodes).

``spec.node.protection``, ``spec.trigger``, ``spec.load.retry``, ``spec.load.balancing`` and
``spec.node.slowPool``: what parses, what is refused (naming the field, offline, as the API server
would), and that ``spec.load.retry`` is the load generator's own :class:`RetryPolicy`.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, get_args

import pytest
from nodelab.model import crd, spec, validation

from loadgen.resilience import BreakerSettings, PolicyError, RetryPolicy
from tests.support.lab_documents import lab_document

Doc = dict[str, Any]

PHASES = Path(__file__).resolve().parents[2] / "manifests" / "phases"
# A time-bounded open loop, which a trigger needs.
OPEN_LOOP: Doc = {"rate": 20, "durationSeconds": 30}


def _parse(**spec_body: Any) -> spec.NodeLabSpec:
    return spec.parse_nodelab(lab_document(**spec_body)).spec


def _errors(document: Doc) -> list[validation.FieldError]:
    with pytest.raises(validation.SpecInvalid) as caught:
        spec.parse_nodelab(document)
    return caught.value.errors


def _properties(*path: str) -> Doc:
    """The CRD schema node of ``spec.<path>``."""
    node: Doc = crd.spec_schema()["properties"]["spec"]
    for key in path:
        node = node["properties"][key]
    return node


# --- phases 1-4 are untouched --------------------------------------------------------------


def test_without_the_new_blocks_a_spec_parses_as_in_phases_1_to_4() -> None:
    parsed = _parse()
    assert parsed.node.protection is None and parsed.node.slow_pool is None
    assert parsed.load.retry is None and parsed.trigger is None
    assert parsed.load.balancing == "round-robin", "the load generator's behaviour until now"


# Phases 1-4 and the challenge; the phase 5 and 6 files (phase-5*, phase-6*) use the new blocks.
EARLIER = sorted(p for p in PHASES.glob("*.yaml") if not p.name.startswith(("phase-5", "phase-6")))


@pytest.mark.parametrize("path", EARLIER, ids=lambda p: p.name)
def test_every_shipped_phase_file_still_parses_without_them(path: Path) -> None:
    parsed = spec.load_phase_file(path).spec
    assert (parsed.node.protection, parsed.node.slow_pool) == (None, None)
    assert (parsed.load.retry, parsed.trigger) == (None, None)


def test_no_new_field_is_required_and_only_balancing_is_defaulted() -> None:
    # The API server writes defaults into every stored NodeLab: only spec.load.balancing may
    # appear in one that does not mention the new blocks.
    defaulted = validation.apply_defaults(lab_document(), crd.spec_schema())["spec"]
    assert set(defaulted) == {"node", "load", "slo"}
    assert "protection" not in defaulted["node"] and "slowPool" not in defaulted["node"]
    assert "retry" not in defaulted["load"] and defaulted["load"]["balancing"] == "round-robin"


# --- what parses -----------------------------------------------------------------------------


def test_protection_defaults_and_values() -> None:
    assert _parse(node={"protection": {}}).node.protection == spec.ProtectionSpec(
        max_queue=0, retry_after_seconds=1, rate_limit=None, rate_burst=None
    )
    given = {"maxQueue": 10, "retryAfterSeconds": 2, "rateLimit": 5, "rateBurst": 8}
    protection = _parse(node={"protection": given}).node.protection
    assert protection == spec.ProtectionSpec(10, 2, 5.0, 8)
    assert protection is not None and isinstance(protection.rate_limit, float)


def test_a_rate_limit_without_a_burst_is_fine() -> None:
    protection = _parse(node={"protection": {"rateLimit": 0.5}}).node.protection
    assert protection is not None and (protection.rate_limit, protection.rate_burst) == (0.5, None)


def test_a_slow_trigger() -> None:
    trigger = {"startSeconds": 10, "durationSeconds": 5, "mode": "slow", "extraMillis": 800}
    parsed = _parse(load=OPEN_LOOP, trigger=trigger).trigger
    assert parsed == spec.TriggerSpec(
        start_seconds=10.0, duration_seconds=5.0, mode="slow", extra_millis=800, status=503
    )
    assert parsed is not None and parsed.end_seconds == 15.0


def test_a_fail_trigger_answers_503_unless_told_500() -> None:
    fail = {"durationSeconds": 2.5, "mode": "fail"}
    parsed = _parse(load=OPEN_LOOP, trigger=fail).trigger
    assert parsed == spec.TriggerSpec(start_seconds=0.0, duration_seconds=2.5, mode="fail")
    assert parsed is not None and parsed.status == 503
    told = _parse(load=OPEN_LOOP, trigger={**fail, "status": 500}).trigger
    assert told is not None and told.status == 500


def test_a_trigger_may_end_just_before_the_load() -> None:
    trigger = {"startSeconds": 20, "durationSeconds": 9.5, "mode": "fail"}
    parsed = _parse(load=OPEN_LOOP, trigger=trigger).trigger
    assert parsed is not None and parsed.end_seconds < OPEN_LOOP["durationSeconds"]


def test_retry_is_the_load_generators_policy() -> None:
    retry = {
        "kind": "backoff",
        "maxAttempts": 4,
        "baseMillis": 50,
        "capMillis": 1000,
        "budgetRatio": 0.1,
        "honorRetryAfter": True,
        "breaker": {"failureRatio": 0.25, "minCalls": 10, "openSeconds": 2, "probes": 1},
    }
    parsed = _parse(load={"retry": retry}).load.retry
    assert parsed == RetryPolicy(
        kind="backoff",
        max_attempts=4,
        base_millis=50,
        cap_millis=1000,
        budget_ratio=0.1,
        honor_retry_after=True,
        breaker=BreakerSettings(failure_ratio=0.25, min_calls=10, open_seconds=2, probes=1),
    )
    assert parsed is not None and parsed.to_mapping() == retry


def test_an_empty_retry_block_never_retries_and_an_empty_breaker_takes_its_defaults() -> None:
    assert _parse(load={"retry": {}}).load.retry == RetryPolicy()
    immediate = _parse(load={"retry": {"kind": "immediate", "maxAttempts": 2, "breaker": {}}})
    assert immediate.load.retry == RetryPolicy(
        kind="immediate", max_attempts=2, breaker=BreakerSettings()
    )


@pytest.mark.parametrize(
    "balancing", ["round-robin", "random", "least-outstanding", "p2c", "peak-ewma"]
)
def test_every_balancing_policy_parses(balancing: str) -> None:
    assert _parse(load={"balancing": balancing}).load.balancing == balancing


def test_the_balancing_literal_is_the_crds_enum() -> None:
    assert list(get_args(spec.Balancing)) == _properties("load", "balancing")["enum"]


def test_a_slow_pool_by_factor_by_delay_or_both() -> None:
    node = {"replicas": 3, "slowPool": {"replicas": 2, "serviceFactor": 3}}
    assert _parse(node=node).node.slow_pool == spec.SlowPoolSpec(2, service_factor=3.0)
    delayed = _parse(node={"replicas": 2, "slowPool": {"extraMillis": 200}}).node.slow_pool
    assert delayed == spec.SlowPoolSpec(replicas=1, extra_millis=200), "one slow node by default"
    both = {"replicas": 4, "slowPool": {"replicas": 3, "serviceFactor": 1.5, "extraMillis": 5}}
    assert _parse(node=both).node.slow_pool == spec.SlowPoolSpec(3, 1.5, 5)


# --- what is refused, naming the field ---------------------------------------------------------


def _with_trigger(**trigger: Any) -> Doc:
    return lab_document(load=dict(OPEN_LOOP), trigger=trigger)


SLOW = {"durationSeconds": 5, "mode": "slow", "extraMillis": 100}

# (case, document, the field every refusal of it names)
BAD: list[tuple[str, Doc, str]] = [
    (
        "queue-negative",
        lab_document(node={"protection": {"maxQueue": -1}}),
        "spec.node.protection.maxQueue",
    ),
    (
        "retry-after-zero",
        lab_document(node={"protection": {"retryAfterSeconds": 0}}),
        "spec.node.protection.retryAfterSeconds",
    ),
    (
        "rate-zero",
        lab_document(node={"protection": {"rateLimit": 0}}),
        "spec.node.protection.rateLimit",
    ),
    (
        "burst-zero",
        lab_document(node={"protection": {"rateLimit": 5, "rateBurst": 0}}),
        "spec.node.protection.rateBurst",
    ),
    (
        "burst-without-rate",
        lab_document(node={"protection": {"rateBurst": 5}}),
        "spec.node.protection.rateBurst",
    ),
    (
        "protection-typo",
        lab_document(node={"protection": {"maxqueue": 1}}),
        "spec.node.protection.maxqueue",
    ),
    ("trigger-closed-loop", lab_document(trigger=SLOW), "spec.trigger"),
    (
        "trigger-no-duration",
        lab_document(load={"rate": 5, "requests": 100}, trigger=SLOW),
        "spec.trigger",
    ),
    (
        "trigger-no-rate",
        lab_document(load={"durationSeconds": 30}, trigger=SLOW),
        "spec.trigger",
    ),
    (
        "trigger-ends-with-the-load",
        _with_trigger(startSeconds=25, durationSeconds=5, mode="fail"),
        "spec.trigger.durationSeconds",
    ),
    (
        "trigger-ends-after-the-load",
        _with_trigger(startSeconds=29.5, durationSeconds=0.75, mode="fail"),
        "spec.trigger.durationSeconds",
    ),
    (
        "trigger-slow-without-extra",
        _with_trigger(durationSeconds=5, mode="slow"),
        "spec.trigger.extraMillis",
    ),
    (
        "trigger-fail-with-extra",
        _with_trigger(durationSeconds=5, mode="fail", extraMillis=100),
        "spec.trigger.extraMillis",
    ),
    (
        "trigger-extra-zero",
        _with_trigger(durationSeconds=5, mode="slow", extraMillis=0),
        "spec.trigger.extraMillis",
    ),
    ("trigger-mode", _with_trigger(durationSeconds=5, mode="down"), "spec.trigger.mode"),
    ("trigger-no-mode", _with_trigger(durationSeconds=5), "spec.trigger.mode"),
    ("trigger-no-length", _with_trigger(mode="fail"), "spec.trigger.durationSeconds"),
    (
        "trigger-length-zero",
        _with_trigger(durationSeconds=0, mode="fail"),
        "spec.trigger.durationSeconds",
    ),
    (
        "trigger-start-negative",
        _with_trigger(startSeconds=-1, durationSeconds=5, mode="fail"),
        "spec.trigger.startSeconds",
    ),
    (
        "trigger-status-502",
        _with_trigger(durationSeconds=5, mode="fail", status=502),
        "spec.trigger.status",
    ),
    ("balancing-unknown", lab_document(load={"balancing": "least-conn"}), "spec.load.balancing"),
    (
        "slow-pool-all-slow",
        lab_document(node={"replicas": 3, "slowPool": {"replicas": 3, "serviceFactor": 2}}),
        "spec.node.slowPool.replicas",
    ),
    (
        "slow-pool-single-node",
        lab_document(node={"slowPool": {"serviceFactor": 2}}),
        "spec.node.slowPool.replicas",
    ),
    (
        "slow-pool-not-slow",
        lab_document(node={"replicas": 2, "slowPool": {}}),
        "spec.node.slowPool",
    ),
    (
        "slow-pool-replicas-zero",
        lab_document(node={"replicas": 2, "slowPool": {"replicas": 0, "extraMillis": 5}}),
        "spec.node.slowPool.replicas",
    ),
    (
        "slow-pool-faster",
        lab_document(node={"replicas": 2, "slowPool": {"serviceFactor": 0.5}}),
        "spec.node.slowPool.serviceFactor",
    ),
    (
        "slow-pool-extra-zero",
        lab_document(node={"replicas": 2, "slowPool": {"extraMillis": 0}}),
        "spec.node.slowPool.extraMillis",
    ),
]

# spec.load.retry mappings that RetryPolicy refuses, and the field it names (under spec.load).
BAD_RETRIES: list[tuple[str, Doc, str]] = [
    ("kind-unknown", {"kind": "forever"}, "retry.kind"),
    ("none-with-attempts", {"maxAttempts": 3}, "retry.maxAttempts"),
    ("backoff-one-attempt", {"kind": "backoff"}, "retry.maxAttempts"),
    ("immediate-one-attempt", {"kind": "immediate", "maxAttempts": 1}, "retry.maxAttempts"),
    ("attempts-zero", {"maxAttempts": 0}, "retry.maxAttempts"),
    (
        "cap-below-base",
        {"kind": "backoff", "maxAttempts": 3, "baseMillis": 500, "capMillis": 100},
        "retry.capMillis",
    ),
    ("cap-below-default-base", {"capMillis": 50}, "retry.capMillis"),
    ("base-zero", {"baseMillis": 0}, "retry.baseMillis"),
    ("cap-negative", {"capMillis": -1}, "retry.capMillis"),
    ("budget-above-one", {"budgetRatio": 1.5}, "retry.budgetRatio"),
    ("budget-negative", {"budgetRatio": -0.1}, "retry.budgetRatio"),
    ("honor-a-string", {"honorRetryAfter": "yes"}, "retry.honorRetryAfter"),
    ("breaker-ratio-zero", {"breaker": {"failureRatio": 0}}, "retry.breaker.failureRatio"),
    ("breaker-ratio-above-one", {"breaker": {"failureRatio": 1.1}}, "retry.breaker.failureRatio"),
    ("breaker-calls-zero", {"breaker": {"minCalls": 0}}, "retry.breaker.minCalls"),
    ("breaker-open-zero", {"breaker": {"openSeconds": 0}}, "retry.breaker.openSeconds"),
    ("breaker-probes-zero", {"breaker": {"probes": 0}}, "retry.breaker.probes"),
    ("breaker-typo", {"breaker": {"probe": 1}}, "retry.breaker.probe"),
    ("unknown-key", {"jitter": "full"}, "retry.jitter"),
]
GOOD_RETRIES: list[Doc] = [
    {},
    {"kind": "none", "maxAttempts": 1, "honorRetryAfter": True},
    {"kind": "immediate", "maxAttempts": 2},
    {"kind": "backoff", "maxAttempts": 5, "baseMillis": 0.5, "capMillis": 0.5},
    {"kind": "backoff", "maxAttempts": 3, "budgetRatio": 0, "breaker": {"failureRatio": 1}},
    {"kind": "immediate", "maxAttempts": 10, "budgetRatio": 1, "breaker": {"openSeconds": 0.1}},
]


@pytest.mark.parametrize(("case", "document", "field"), BAD, ids=[case for case, _, _ in BAD])
def test_a_bad_field_is_refused_by_name(case: str, document: Doc, field: str) -> None:
    errors = _errors(document)
    assert field in [error.field for error in errors], (case, errors)


@pytest.mark.parametrize(
    ("case", "retry", "field"), BAD_RETRIES, ids=[case for case, _, _ in BAD_RETRIES]
)
def test_a_bad_retry_is_refused_by_name(case: str, retry: Doc, field: str) -> None:
    errors = _errors(lab_document(load={"retry": retry}))
    assert f"spec.load.{field}" in [error.field for error in errors], (case, errors)


NEW_BLOCKS = ("spec.node.protection", "spec.node.slowPool", "spec.load.retry", "spec.trigger")


def _rules(schema: Doc, path: str) -> list[tuple[str, Doc]]:
    """Every CEL rule under ``schema``, with the path of the field it reports."""
    found = [
        (path + rule.get("fieldPath", ""), rule)
        for rule in schema.get("x-kubernetes-validations", [])
    ]
    for key, sub in schema.get("properties", {}).items():
        found += _rules(sub, f"{path}.{key}")
    return found


def test_the_new_rules_messages_name_the_field_they_refuse() -> None:
    # kubectl prints a rule's message: it must tell the reader which field to fix.
    rules = [
        (field, rule)
        for field, rule in _rules(_properties(), "spec")
        if field.startswith(NEW_BLOCKS)
    ]
    assert len(rules) == 10
    for field, rule in rules:
        assert field in rule["message"], (field, rule)


@pytest.mark.parametrize(
    ("case", "retry", "field"), BAD_RETRIES, ids=[case for case, _, _ in BAD_RETRIES]
)
def test_the_crd_and_retry_policy_refuse_the_same_field(case: str, retry: Doc, field: str) -> None:
    # RetryPolicy.parse sees what the operator would pass it: the block with the CRD's defaults.
    defaulted = validation.apply_defaults(lab_document(load={"retry": retry}), crd.spec_schema())
    with pytest.raises(PolicyError) as caught:
        RetryPolicy.parse(defaulted["spec"]["load"]["retry"])
    assert caught.value.field == field, case


@pytest.mark.parametrize("retry", GOOD_RETRIES, ids=str)
def test_the_crd_and_retry_policy_accept_the_same_policies(retry: Doc) -> None:
    parsed = _parse(load={"retry": retry}).load.retry
    assert parsed == RetryPolicy.parse(retry)


def test_the_crd_is_stricter_than_retry_policy_only_in_its_bounds() -> None:
    # RetryPolicy has no upper bounds; the CRD keeps a typo from running a lab for a day.
    huge = {"kind": "immediate", "maxAttempts": 11}
    assert RetryPolicy.parse(huge).max_attempts == 11
    assert [e.field for e in _errors(lab_document(load={"retry": huge}))] == [
        "spec.load.retry.maxAttempts"
    ]


def test_every_retry_policy_default_is_the_crds_default() -> None:
    retry = _properties("load", "retry")
    breaker = retry["properties"]["breaker"]
    for settings, schema in ((RetryPolicy, retry), (BreakerSettings, breaker)):
        defaults = settings().to_mapping()
        assert len(schema["properties"]) == len(dataclasses.fields(settings)), settings
        for key, field_schema in schema["properties"].items():
            if key in defaults:
                assert field_schema.get("default", "no default") == defaults[key], key
            else:
                assert "default" not in field_schema, f"{key}: absent means off in {settings}"
    full = RetryPolicy(kind="backoff", max_attempts=2, budget_ratio=0.1, breaker=BreakerSettings())
    assert set(retry["properties"]) == set(full.to_mapping())
    assert set(breaker["properties"]) == set(BreakerSettings().to_mapping())
    assert retry["properties"]["kind"]["enum"] == ["none", "immediate", "backoff"]


def test_retry_policy_still_refuses_what_the_crd_would_miss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The spec is parsed by RetryPolicy itself: with the CRD's retry rules gone, a bad policy is
    # still refused, naming the spec field.
    schema = copy.deepcopy(crd.spec_schema())
    retry = schema["properties"]["spec"]["properties"]["load"]["properties"]["retry"]
    del retry["x-kubernetes-validations"]
    monkeypatch.setattr(crd, "spec_schema", lambda: schema)
    bad = {"kind": "backoff", "maxAttempts": 3, "baseMillis": 500, "capMillis": 100}
    (error,) = _errors(lab_document(load={"retry": bad}))
    assert error.field == "spec.load.retry.capMillis"
    assert error.message.startswith("Invalid value: must be >= retry.baseMillis")


def test_retry_field_error_puts_the_policy_field_under_spec_load() -> None:
    error = spec.retry_field_error(PolicyError("retry.breaker.probes", "must be an integer >= 1"))
    assert str(error) == "spec.load.retry.breaker.probes: Invalid value: must be an integer >= 1"


def test_a_trigger_rule_sees_whole_numbers_as_numbers() -> None:
    # startSeconds and durationSeconds are CEL doubles on the server even when written 25 and 5
    # (the sum is checked against the load's integer duration): offline must type them alike.
    (error,) = _errors(_with_trigger(startSeconds=25, durationSeconds=5, mode="fail"))
    assert error.field == "spec.trigger.durationSeconds"
    assert "must be less than spec.load.durationSeconds" in error.message


# --- kubectl explain ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ("node", "protection"),
        ("node", "slowPool"),
        ("load", "retry"),
        ("load", "balancing"),
        ("trigger",),
    ],
    ids=".".join,
)
def test_each_new_block_says_which_phase_uses_it(path: tuple[str, ...]) -> None:
    description = _properties(*path)["description"]
    assert "phase 5" in description or "phase 6" in description
