"""The embedded default: phase files run on one machine (``nodelab run|tour|challenge``).

Small modules, each importable alone: ``procs`` (process groups, reaping), ``fleet`` (node
processes on 127.0.0.1), ``workload`` (quick and I/O modes), ``phase_run`` (one phase: fleet,
the Job's load plan and calibration, load, model), ``statusdoc`` (the operator's status, as a
file), ``narration`` (steps and load progress on
stderr), ``tables``, ``chart``, and
the three command modules ``cli_run``, ``cli_tour``, ``cli_challenge``.
"""

__all__: list[str] = []
