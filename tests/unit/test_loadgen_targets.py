"""--expand-dns: one target per address behind a host."""

from __future__ import annotations

import socket

import pytest

from loadgen.targets import expand_targets, resolve_host, with_host


def fake_resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


def test_a_headless_service_becomes_one_target_per_pod() -> None:
    resolve = fake_resolver({"lab-nodes.labs.svc": ["10.0.0.7", "10.0.0.5"]})
    assert expand_targets(["http://lab-nodes.labs.svc:5001"], resolve) == (
        "http://10.0.0.7:5001",
        "http://10.0.0.5:5001",
    )


def test_addresses_are_kept_and_duplicates_dropped() -> None:
    resolve = fake_resolver({"a": ["10.0.0.1"], "b": ["10.0.0.1", "10.0.0.2"]})
    targets = ["http://127.0.0.1:5001", "http://a:80", "http://b:80"]
    assert expand_targets(targets, resolve) == (
        "http://127.0.0.1:5001",
        "http://10.0.0.1:80",
        "http://10.0.0.2:80",
    )


def test_ipv6_addresses_get_brackets() -> None:
    assert with_host("http://lab:5001", "fd00::1") == "http://[fd00::1]:5001"
    assert with_host("http://lab", "10.1.2.3") == "http://10.1.2.3"


def test_an_unresolvable_host_stays_a_target(caplog: pytest.LogCaptureFixture) -> None:
    assert expand_targets(["http://nowhere:5001"], fake_resolver({})) == ("http://nowhere:5001",)
    assert "cannot resolve nowhere" in caplog.text


def test_resolve_localhost() -> None:
    assert "127.0.0.1" in resolve_host("localhost", 80) or "::1" in resolve_host("localhost", 80)
