"""``nodelab tour``'s tour flags: --storm and --balancing, one at a time, refused cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from nodelab.local import cli_tour
from nodelab.local.settings import add_tour_flags, build_parser, settings_from_args


def _settings(*argv: str) -> str:
    parser = build_parser("t", "")
    add_tour_flags(parser)
    return settings_from_args(parser.parse_args(list(argv))).tour


def test_each_flag_picks_its_tour() -> None:
    assert _settings() == "scaling"
    assert _settings("--storm") == "storm"
    assert _settings("--balancing", "--quick") == "balancing"


def test_both_at_once_is_a_usage_error_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_tour.main(["--storm", "--balancing"]) == 2
    err = capsys.readouterr().err
    assert "--balancing: not allowed with argument --storm" in err


@pytest.mark.parametrize(
    ("flag", "missing"), [("--storm", "phase-5?-*.yaml"), ("--balancing", "phase-6a-*.yaml")]
)
def test_a_folder_without_the_phase_files_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, missing: str
) -> None:
    assert cli_tour.main([flag, "--quick", "--phases", str(tmp_path)]) == 2
    assert missing in capsys.readouterr().err


def test_a_bad_storm_file_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "phase-5a-storm.yaml").write_text("metadata: [\n")
    assert cli_tour.main(["--storm", "--phases", str(tmp_path)]) == 2
    assert "phase-5a-storm.yaml" in capsys.readouterr().err
