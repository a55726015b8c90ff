"""Tour table and chart from canned reports (no processes): content and a non-empty file."""

from __future__ import annotations

import io
from pathlib import Path

from nodelab.local import chart, render
from rich.console import Console

from tests.unit.test_local_status import canned_result


def tour_results() -> list:  # type: ignore[type-arg]
    return [
        canned_result("phase-1-overwhelm.yaml", p50=100, p99=130, rps=45, verdict="Crashed"),
        canned_result("phase-2-vertical.yaml", p50=50, p99=60, rps=90, verdict="OK"),
        canned_result("phase-3-limit.yaml", p50=200, p99=260, rps=88, verdict="Crashed"),
        canned_result("phase-4-horizontal.yaml", p50=190, p99=240, rps=92, verdict="Crashed"),
    ]


def text_of(table: object) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=220, color_system=None).print(table)
    return buffer.getvalue()


def test_tour_table_has_every_phase_side_by_side() -> None:
    text = text_of(render.tour_table(tour_results(), "tour"))
    for phase in ("phase-1-overwhelm", "phase-2-vertical", "phase-3-limit", "phase-4-horizontal"):
        assert phase in text
    assert "Crashed" in text and "OK" in text
    assert "cores: 30 workers share one machine's 2 cores" in text
    assert "workers: 4 of 5 requests queue for 1 workers" in text


def test_report_table_and_model_lines() -> None:
    result = tour_results()[0]
    text = text_of(render.report_table(result))
    assert "20/20" in text and "Crashed" in text and "120" in text
    lines = render.model_lines(result)
    assert "measured 45.00 rps, predicted" in lines[1]
    assert lines[-1].startswith("  bottleneck: workers")


def test_chart_files_are_written(tmp_path: Path) -> None:
    paths = chart.save_chart(tour_results(), tmp_path / "out", title="tour")
    assert [p.name for p in paths] == ["tour.png", "tour.svg"]
    for path in paths:
        assert path.stat().st_size > 10_000
    assert paths[0].read_bytes()[:4] == b"\x89PNG"


def test_latency_curve_reads_the_histogram_or_falls_back() -> None:
    report = tour_results()[0].report
    curve = chart.latency_curve(report)
    assert curve[0][0] == 0.0 and curve[-1][0] == 100.0
    assert curve[-1][1] >= 129.0  # the maximum recorded
    fallback = chart.latency_curve({**report, "histogram": "not base64"})
    assert dict(fallback)[99.0] == 130.0
