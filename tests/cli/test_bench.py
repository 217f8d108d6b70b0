"""`mcpsim bench` runs end to end in a tiny configuration and reports every field."""

import json
import subprocess
import sys


def test_bench_compare_writes_every_field(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcpsim",
            "bench",
            "--compare",
            "direct,managed,managed-fork,managed-warm,in-process",
            "--sessions",
            "2",
            "--steps",
            "5",
            "--burst",
            "3",
            "--memory-sessions",
            "2",
            "--live",
            "4",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report) >= {"mcpsim", "machine", "settings", "results", "time"}
    modes = [r["mode"] for r in report["results"]]
    assert modes == ["direct", "managed", "managed-fork", "managed-warm", "in-process"]
    for r in report["results"]:
        assert set(r["spawn_ms"]) == {"p50", "p95", "p99", "mean", "n"} and r["spawn_ms"]["n"] == 2
        assert set(r["call_ms"]) == {"p50", "p95", "p99", "mean", "n"} and r["call_ms"]["n"] == 5
        assert r["throughput_calls_s"] > 0
        if r["mode"] == "in-process":  # growth of the one server process per open session: may round to 0
            assert r["rss_mb"] is not None and r["uss_mb"] is not None
            assert r["live"]["tree_processes"] == 1  # every session in the one server process
        else:
            assert r["rss_mb"] > 0 and r["uss_mb"] > 0
        if r["mode"] != "direct":
            assert r["spawn_raw_ms"]["n"] == 2 and r["spawn_raw_ms"]["p50"] > 0
            assert r["burst_ready_s"] > 0 and r["burst_errors"] == 0
            assert r["live"]["open"] == 4 and r["live"]["errors"] == 0 and r["live"]["tree_uss_mb"] > 0
    assert "managed-fork vs direct" in result.stdout and "in-process vs direct" in result.stdout


def test_bench_matrix_covers_every_front_backend_pair(tmp_path):
    out = tmp_path / "matrix.json"
    result = subprocess.run(
        [sys.executable, "-m", "mcpsim", "bench", "--matrix", "--steps", "3", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    matrix = json.loads(out.read_text())
    assert sorted(matrix["pairs"]) == sorted(
        f"{front}->{backend}" for front in ("streamable-http", "sse", "stdio") for backend in ("stdio", "http", "sse")
    )
    assert all(stats["n"] == 3 and stats["p50"] > 0 for stats in matrix["pairs"].values())
    assert set(matrix["direct"]) == {"streamable-http", "sse", "stdio"}


def test_bench_protocol_both_times_each_era_through_mcpsim_and_direct(tmp_path):
    out = tmp_path / "eras.json"
    result = subprocess.run(
        [sys.executable, "-m", "mcpsim", "bench", "--protocol", "both", "--steps", "4", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    eras = json.loads(out.read_text())["eras"]
    assert sorted(eras) == ["2025-11-25", "2026-07-28"]
    for stats in eras.values():
        assert stats["through_mcpsim"]["n"] == stats["direct"]["n"] == 4 and stats["through_mcpsim"]["p50"] > 0
    assert "lake_move at 2026-07-28 (interleaved)" in result.stdout
