"""The terminal face of a finished run: rich tables of its report."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table

__all__ = ["report_tables"]

_VERDICT_STYLE = {"OK": "bold green", "Crashed": "bold red", "Errors": "bold yellow"}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _requests(report: dict[str, Any]) -> str:
    text = f"{report['requests']} ({report['successes']} ok)"
    scheduled = report["scheduled"]
    not_sent = report["errors"]["byKind"].get("not_sent", 0)
    if scheduled is not None:
        text += f" of {scheduled} scheduled"
    if not_sent:
        text += f", {not_sent} not sent before the run ended"
    return text


def report_tables(report: dict[str, Any]) -> Group:
    """The summary, per-node and (for a sweep) per-level tables of a report."""
    latency = report["latencyMillis"]
    errors = report["errors"]
    verdict = report["verdict"]
    summary = Table(title="Load report", show_header=False, title_justify="left")
    summary.add_column("what", style="bold")
    summary.add_column("value")
    mode = report["mode"]
    if mode == "open":
        mode += f" ({_fmt(report['rate'])} req/s, latency from intended start)"
    rows: list[tuple[str, str]] = [
        ("mode", mode),
        ("path", report["path"]),
        ("targets", ", ".join(report["targets"])),
        ("concurrency", f"{report['concurrency']} in {report['processes']} process(es)"),
        ("duration", f"{report['durationSeconds']:.2f} s"),
        ("requests", _requests(report)),
        (
            "errors",
            f"{errors['total']}"
            + (
                " (" + ", ".join(f"{k} {v}" for k, v in errors["byKind"].items()) + ")"
                if errors["byKind"]
                else ""
            ),
        ),
        ("throughput", f"{_fmt(report['rps'])} req/s"),
    ]
    for down in report["targetsDown"]:
        how = "went away (answered, then refused)" if down["wentAway"] else "never answered"
        rows.append(
            ("target down", f"{down['target']}: {how}, {down['failedConnects']} failed connects")
        )
    if report["serviceMillis"] is not None:
        service = report["serviceMillis"]
        rows.append(("service ms", f"p50 {_fmt(service['p50'])}  mean {_fmt(service['mean'])}"))
    if report["calibration"] is not None:
        calibration = report["calibration"]
        rows.append(
            (
                "calibration",
                f"{calibration['requests']} sequential: latency "
                f"{_fmt(calibration['latencyMillis'])} ms, service "
                f"{_fmt(calibration['serviceMillis'])} ms",
            )
        )
    rows.append(("SLO", f"p99 <= {report['sloP99Millis']} ms"))
    rows.append(("verdict", f"[{_VERDICT_STYLE[verdict]}]{verdict}[/]"))
    for what, value in rows:
        summary.add_row(what, value)

    latency_table = Table(title="Latency (ms)", title_justify="left")
    keys = ("min", "p50", "p90", "p95", "p99", "max", "mean")
    for key in keys:
        latency_table.add_column(key, justify="right")
    latency_table.add_row(*(_fmt(latency[key]) for key in keys))

    per_node = Table(title="Per node", title_justify="left")
    for column in ("node", "target", "requests", "ok", "errors", "req/s", "p50 ms", "p99 ms"):
        per_node.add_column(column, justify="left" if column in {"node", "target"} else "right")
    per_node.add_column("max ms", justify="right")
    for node in report["perNode"]:
        node_latency = node["latencyMillis"]
        per_node.add_row(
            node["node"],
            node["target"],
            str(node["requests"]),
            str(node["successes"]),
            str(node["errors"]),
            _fmt(node["rps"]),
            _fmt(node_latency["p50"]),
            _fmt(node_latency["p99"]),
            _fmt(node_latency["max"]),
        )
    parts: list[Table] = [summary, latency_table, per_node]
    if report["sweep"]:
        sweep = Table(title="Sweep", title_justify="left")
        for column in ("concurrency", "requests", "req/s", "p50 ms", "p99 ms", "verdict"):
            sweep.add_column(column, justify="right")
        for level in report["sweep"]:
            style = _VERDICT_STYLE[level["verdict"]]
            sweep.add_row(
                str(level["concurrency"]),
                str(level["requests"]),
                _fmt(level["rps"]),
                _fmt(level["p50Millis"]),
                _fmt(level["p99Millis"]),
                f"[{style}]{level['verdict']}[/]",
            )
        parts.append(sweep)
        breaking = report["breakingConcurrency"]
        note = Table.grid()
        note.add_row(
            f"breaking concurrency: {breaking}"
            if breaking is not None
            else "every level met the SLO"
        )
        parts.append(note)
    return Group(*parts)
