"""The shipped phase files, as the tour runs them: ``manifests/phases/phase-N-*.yaml`` in order."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PHASES", "PHASES_DIR"]

PHASES_DIR = Path(__file__).resolve().parents[2] / "manifests" / "phases"
PHASES = sorted(PHASES_DIR.glob("phase-[1-9]-*.yaml"))
