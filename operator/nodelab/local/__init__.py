"""The embedded default: phase files run on one machine (``nodelab run|tour|challenge``).

Small modules, each importable alone: ``procs`` (process groups, reaping), ``fleet`` (node
processes on 127.0.0.1), ``workload`` (quick and I/O modes), ``calibrate``, ``phase_run`` (one
phase: fleet, calibration, load, model), ``statusdoc``, ``narration`` (steps and load progress on
stderr), ``tables``, ``chart``, and
the three command modules ``cli_run``, ``cli_tour``, ``cli_challenge``.
"""

__all__: list[str] = []
