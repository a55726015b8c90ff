"""The wire format between worker processes and the parent: plain JSON, nothing lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from loadgen.accumulators import RunResult, RunStats
from loadgen.health import DownTarget
from loadgen.histogram import encode_histogram
from loadgen.wire import result_from_wire, result_to_wire


def test_a_result_survives_json_unchanged() -> None:
    stats = RunStats()
    stats.record_success("http://a", "1", 1500, service_us=700, uncorrected_us=1200)
    stats.record_success("http://b", "2", 2500)
    stats.record_error("http://b", "timeout", 2)
    stats.record_target_down("http://c", DownTarget(went_away=True, failed_connects=3))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    result = RunResult(stats, t0, t0 + timedelta(seconds=1.5), 1.5, cut_short=True)

    back = result_from_wire(json.loads(json.dumps(result_to_wire(result))))

    assert (back.started_at, back.finished_at) == (result.started_at, result.finished_at)
    assert (back.duration_s, back.cut_short) == (1.5, True)
    assert back.stats.errors == {"timeout": 2}
    assert back.stats.target_errors == {"http://b": 2}
    assert back.stats.targets_down == stats.targets_down
    assert {name: node.targets for name, node in back.stats.nodes.items()} == {
        "1": {"http://a"},
        "2": {"http://b"},
    }
    for ours, theirs in [
        (stats.latency(), back.stats.latency()),
        (stats.service, back.stats.service),
        (stats.uncorrected, back.stats.uncorrected),
    ]:
        assert encode_histogram(theirs) == encode_histogram(ours)
