"""--report-to: patching the report into a NodeLab's status, with bounded retries."""

from __future__ import annotations

from typing import Any

import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from loadgen.reporter import (
    GROUP,
    PLURAL,
    VERSION,
    ReportError,
    backoff_delays,
    is_retryable,
    parse_report_to,
    patch_status,
)

REPORT = {"schemaVersion": 1, "verdict": "OK", "latencyMillis": {"p99": 12.5}}


class FakeApi:
    """Answers each patch with the next outcome: an exception to raise, or success."""

    def __init__(self, outcomes: list[BaseException | None]) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def patch_namespaced_custom_object_status(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        body = args[5]
        return {"status": {"lastRun": body[0]["value"] if isinstance(body, list) else body}}


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_one_json_patch_replaces_last_run_on_the_status_subresource() -> None:
    api = FakeApi([None])
    assert patch_status(api, "labs", "scaling-lab", REPORT, sleep=Sleeps()) == 1
    (args, kwargs) = api.calls[0]
    replace = [{"op": "add", "path": "/status/lastRun", "value": REPORT}]
    assert args == (GROUP, VERSION, "labs", PLURAL, "scaling-lab", replace)
    assert (GROUP, VERSION, PLURAL) == ("lab.nodelab.dev", "v1alpha1", "nodelabs")
    assert kwargs["_content_type"] == "application/json-patch+json"
    assert kwargs["_request_timeout"] > 0


@pytest.mark.parametrize(
    "transient",
    [
        ApiException(status=409, reason="Conflict"),
        ApiException(status=429, reason="Too Many Requests"),
        ApiException(status=500, reason="Internal Server Error"),
        ApiException(status=503, reason="Service Unavailable"),
        urllib3.exceptions.NewConnectionError(None, "connection refused"),  # type: ignore[arg-type]
        urllib3.exceptions.ProtocolError("connection reset"),
        ConnectionResetError("reset"),
        TimeoutError("timed out"),
    ],
)
def test_transient_failures_are_retried_with_backoff(transient: BaseException) -> None:
    api = FakeApi([transient, transient, None])
    sleeps = Sleeps()
    attempts = patch_status(api, "labs", "lab", REPORT, delays=[0.5, 1.0, 2.0], sleep=sleeps)
    assert attempts == 3
    assert sleeps == [0.5, 1.0]
    assert len(api.calls) == 3


def test_a_lab_without_status_gets_a_merge_patch() -> None:
    api = FakeApi([ApiException(status=422, reason="Unprocessable Entity")])
    assert patch_status(api, "labs", "lab", REPORT, sleep=Sleeps()) == 2
    (_, first), (args, second) = api.calls
    assert first["_content_type"] == "application/json-patch+json"
    assert args[5] == {"status": {"lastRun": REPORT}}
    assert second["_content_type"] == "application/merge-patch+json"


def test_a_body_refused_by_both_patches_fails() -> None:
    refused = ApiException(status=422, reason="Unprocessable Entity")
    api = FakeApi([refused, refused])
    with pytest.raises(ReportError, match="HTTP 422"):
        patch_status(api, "labs", "lab", REPORT, sleep=Sleeps())
    assert len(api.calls) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_permanent_failures_are_not_retried(status: int) -> None:
    api = FakeApi([ApiException(status=status, reason="No")])
    sleeps = Sleeps()
    with pytest.raises(ReportError, match=f"HTTP {status}"):
        patch_status(api, "labs", "lab", REPORT, sleep=sleeps)
    assert len(api.calls) == 1
    assert sleeps == []


def test_attempts_are_bounded() -> None:
    api = FakeApi([ApiException(status=503, reason="Unavailable")] * 10)
    sleeps = Sleeps()
    with pytest.raises(ReportError, match="attempt 4 of 4"):
        patch_status(api, "labs", "lab", REPORT, attempts=4, sleep=sleeps)
    assert len(api.calls) == 4
    assert len(sleeps) == 3


def test_bugs_are_not_retried() -> None:
    api = FakeApi([TypeError("unexpected keyword")])
    with pytest.raises(ReportError):
        patch_status(api, "labs", "lab", REPORT, sleep=Sleeps())
    assert len(api.calls) == 1


def test_backoff_doubles_up_to_a_cap() -> None:
    assert backoff_delays(6, base_s=0.5, cap_s=4.0) == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff_delays(1) == []
    for delay, plain in zip(backoff_delays(5, jitter=0.2), backoff_delays(5), strict=True):
        assert 0.8 * plain <= delay <= 1.2 * plain


def test_is_retryable() -> None:
    assert is_retryable(ApiException(status=502))
    assert not is_retryable(ApiException(status=404))
    assert not is_retryable(ValueError("bad"))


def test_parse_report_to() -> None:
    assert parse_report_to("labs/scaling-lab") == ("labs", "scaling-lab")
    assert parse_report_to("default/lab.v2") == ("default", "lab.v2")
    for bad in ("lab", "/lab", "labs/", "Labs/lab", "labs/lab/x", "la_bs/lab", "a" * 64 + "/lab"):
        with pytest.raises(ValueError):
            parse_report_to(bad)
