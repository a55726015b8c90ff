"""The local commands' argument and phase-file errors: exit 2 and the field's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from nodelab.local import cli_challenge, cli_run, cli_tour

PHASES = Path(__file__).resolve().parents[2] / "manifests" / "phases"


def test_bad_phase_file_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    text = (PHASES / "phase-2-vertical.yaml").read_text().replace("workers: 10", "workers: 0")
    bad.write_text(text)
    assert cli_run.main([str(bad), "--quick"]) == 2
    err = capsys.readouterr().err
    assert "spec.node.workers" in err and "should be greater than or equal to 1" in err


def test_unknown_field_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((PHASES / "phase-1-overwhelm.yaml").read_text().replace("replicas:", "replica:"))
    assert cli_run.main([str(bad)]) == 2
    assert "spec.node.replica: unknown field" in capsys.readouterr().err
    assert cli_run.main([str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_bad_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_run.main(["x.yaml", "--mode", "gpu"]) == 2
    assert "--mode" in capsys.readouterr().err
    assert cli_tour.main(["--base-port", "80"]) == 2
    assert cli_challenge.main(["--help"]) == 0


def test_tour_refuses_a_bad_phase_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "phase-1-x.yaml").write_text(
        (PHASES / "phase-1-overwhelm.yaml").read_text().replace("concurrency: 5", "concurrency: -1")
    )
    assert cli_tour.main(["--phases", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "spec.load.concurrency" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
