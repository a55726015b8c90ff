"""Tour table, chart, verdict lines and the mode choice, from canned reports and the phase files."""

from __future__ import annotations

import io
from pathlib import Path

from nodelab.local import chart, cli_tour, tables
from nodelab.model import spec
from rich.console import Console

from tests.unit.test_local_status import PHASES, canned_result


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
    text = text_of(tables.tour_table(tour_results(), "tour"))
    for phase in ("phase-1-overwhelm", "phase-2-vertical", "phase-3-limit", "phase-4-horizontal"):
        assert phase in text
    assert "Crashed" in text and "OK" in text
    assert "cores: 30 workers share one machine's 2 cores" in text
    assert "workers: 4 of 5 requests queue for 1 workers" in text


def test_report_table_and_model_lines() -> None:
    result = tour_results()[0]
    text = text_of(tables.report_table(result))
    assert "20/20" in text and "Crashed" in text and "120" in text
    lines = tables.model_lines(result)
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


def _phases() -> list[tuple[str, spec.NodeLab]]:
    return [(path.stem, spec.load_phase_file(path)) for path in cli_tour.phase_files(PHASES)]


def test_phase_cpu_is_replicas_times_workers_times_cpu_per_worker() -> None:
    assert [cli_tour.phase_cpu_millicores(lab) for _, lab in _phases()] == [
        500, 5000, 5000, 15000,
    ]  # fmt: skip


def test_two_cores_choose_io_mode_and_say_why() -> None:
    choice = cli_tour.choose_mode(2, _phases())
    assert (choice.mode, choice.automatic) == ("io", True)
    text = "\n".join(choice.lines)
    assert "2 cores" in text
    assert "phase-1-overwhelm   1 x  1 x 500m =  0.5 CPU  fits" in text
    assert "phase-4-horizontal  3 x 10 x 500m =   15 CPU  7.5x these 2 cores" in text
    assert "phase-2-vertical, phase-3-limit and phase-4-horizontal Pending" in text
    assert "workers (10-30 per phase) would share 2 cores" in text
    assert "scaling would show no recovery" in text
    assert "Mode: I/O" in text and "chosen for this machine" in text and "--mode cpu" in text


def test_enough_cores_choose_cpu_mode() -> None:
    choice = cli_tour.choose_mode(16, _phases())
    assert (choice.mode, choice.automatic) == ("cpu", True)
    text = "\n".join(choice.lines)
    assert "Every phase fits these 16 cores." in text and "Pending" not in text
    assert "Mode: CPU" in text
    # 15 CPU on 15 cores still fits; one core less does not.
    assert cli_tour.choose_mode(15, _phases()).mode == "cpu"
    assert cli_tour.choose_mode(14, _phases()).mode == "io"


def test_an_explicit_mode_is_kept_and_warned_about() -> None:
    forced = cli_tour.choose_mode(2, _phases(), "cpu")
    assert (forced.mode, forced.automatic) == ("cpu", False)
    assert "expect the cores to cap the phases that do not fit" in forced.lines[-1]
    assert cli_tour.choose_mode(2, _phases(), "io").mode == "io"
    assert cli_tour.choose_mode(16, _phases(), "io").lines[-1].endswith("(--mode io).")


def test_verdict_lines_say_why_each_phase_came_out_so() -> None:
    lines = tables.verdict_lines(tour_results())
    assert len(lines) == 4
    # Canned: S = 22 ms, SLO 120 ms; one worker, 5 clients -> 5 rounds = 110 ms predicted.
    assert lines[0].startswith("phase-1-overwhelm: Crashed (the model said OK) - p99 130 ms > SLO")
    assert "Model p99 110 ms: the last client waits 5 rounds of service for 1 worker" in lines[0]
    assert lines[1].startswith("phase-2-vertical: OK (the model said Crashed)")
    assert "service times S here" in lines[1]
