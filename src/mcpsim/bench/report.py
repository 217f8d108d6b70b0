"""The table `mcpsim bench` prints."""

from typing import Any


def print_report(report: dict[str, Any]) -> None:
    """The table `--compare` promises: absolute numbers per mode, then ratios against the first mode."""
    from rich.console import Console
    from rich.table import Table

    results = report["results"]
    table = Table(title=f"mcpsim bench ({report['settings']['env']}, {report['machine']['cpus']} cpus)")
    for column in (
        "mode",
        "spawn p50 ms",
        "spawn p95 ms",
        "raw spawn p50 ms",
        "call p50 ms",
        "call p95 ms",
        "call p99 ms",
        "calls/s",
        f"burst {report['settings']['burst']} ready s",
        "RSS MB",
        "USS MB",
    ):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for r in results:
        table.add_row(
            r["mode"],
            _fmt(r["spawn_ms"].get("p50")),
            _fmt(r["spawn_ms"].get("p95")),
            _fmt(r["spawn_raw_ms"].get("p50")),
            _fmt(r["call_ms"].get("p50")),
            _fmt(r["call_ms"].get("p95")),
            _fmt(r["call_ms"].get("p99")),
            _fmt(r["throughput_calls_s"]),
            _fmt(r["burst_ready_s"]) + (f" ({r['burst_errors']} errors)" if r["burst_errors"] else ""),
            _fmt(r["rss_mb"]),
            _fmt(r["uss_mb"]),
        )
    console = Console()
    console.print(table)
    for r in results:
        if r.get("live"):
            live = r["live"]
            console.print(
                f"{r['mode']}: {live['open']} of {live['sessions']} sessions live at once ({live['errors']} errors), "
                f"opened in {live['open_s']} s; process tree {live['tree_processes']} processes, "
                f"USS {live['tree_uss_mb']} MB, RSS {live['tree_rss_mb']} MB"
            )
    for r in results:
        if r.get("ray"):
            console.print(f"{r['mode']}: {r['ray']}")
    if len(results) > 1:
        base = results[0]
        for r in results[1:]:
            overhead = _sub(r["call_ms"].get("p50"), base["call_ms"].get("p50"))
            console.print(
                f"{r['mode']} vs {base['mode']}: call p50 +{_fmt(overhead)} ms, "
                f"throughput {_fmt(_div(r['throughput_calls_s'], base['throughput_calls_s']), 2)}x, "
                f"spawn p50 {_fmt(_div(r['spawn_ms'].get('p50'), base['spawn_ms'].get('p50')), 2)}x"
            )


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b
