"""The local commands' argument and phase-file errors: exit 2 and the field's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from nodelab.local import cli_challenge, cli_run, cli_tour, common

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


class _NoFleet:
    """Stands in for the fleet: a phase file refused up front must never get this far."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a fleet was started for a phase file that should be refused")


def test_malformed_yaml_names_the_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "Fleet", _NoFleet)
    lines = (PHASES / "phase-1-overwhelm.yaml").read_text().splitlines()
    where = next(i for i, line in enumerate(lines) if line.strip().startswith("workers:"))
    lines[where] = " " + lines[where]  # one space too many: no longer a key of its mapping
    bad = tmp_path / "bad.yaml"
    bad.write_text("\n".join(lines) + "\n")
    assert cli_run.main([str(bad), "--quick"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: line {where + 1}, column " in err
    assert "not valid YAML" in err
    assert "Traceback" not in err
    assert cli_tour.main(["--phases", str(_phases_with(tmp_path, bad))]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def _phases_with(tmp_path: Path, phase: Path) -> Path:
    phases = tmp_path / "phases"
    phases.mkdir()
    (phases / "phase-1-bad.yaml").write_text(phase.read_text())
    return phases


@pytest.mark.parametrize("name", ["1lab", "lab.v2", "Scaling-Lab", "a" * 41])
def test_a_name_no_cluster_would_take_is_refused_naming_metadata_name(
    name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(common, "Fleet", _NoFleet)
    bad = tmp_path / "bad.yaml"
    text = (PHASES / "phase-1-overwhelm.yaml").read_text()
    bad.write_text(text.replace("name: scaling-lab", f"name: {name}", 1))
    assert cli_run.main([str(bad), "--quick"]) == 2
    err = capsys.readouterr().err
    assert f"metadata.name: Invalid value: {name!r}" in err
    assert "DNS-1035" in err
