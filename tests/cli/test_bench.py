"""`mcpsim bench` runs end to end in a tiny configuration and reports every field."""

import contextlib
import json
import socket
import subprocess
import sys
import time

import psutil
import pytest

from helpers.sandbox import bwrap_problem
from helpers.serve import ports, survivors
from mcpsim.bench.ports import SPAN


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


def listening_ports(pid: int) -> set[int]:
    """TCP ports the descendants of `pid` listen on now."""
    found = set()
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                found |= {c.laddr.port for c in child.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    return found


def test_bench_protocol_both_times_each_era_through_mcpsim_and_direct(tmp_path):
    out = tmp_path / "eras.json"
    base = ports(2000)[0]  # the worker's ports 2000..3399 (no other test binds there)
    with socket.create_server(("127.0.0.1", base)):  # taken: the plan must go on to the next port
        argv = [sys.executable, "-m", "mcpsim", "bench", "--protocol", "both", "--steps", "4", "--json", str(out)]
        bench = subprocess.Popen(
            [*argv, "--port-base", str(base)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        seen: set[int] = set()
        while bench.poll() is None:
            seen |= listening_ports(bench.pid)
            time.sleep(0.05)
        stdout, stderr = bench.communicate(timeout=600)
    assert bench.returncode == 0, stderr[-3000:]
    assert len(seen) >= 2 and all(base < port < base + SPAN for port in seen), seen  # the front, the direct server
    eras = json.loads(out.read_text())["eras"]
    assert sorted(eras) == ["2025-11-25", "2026-07-28"]
    for stats in eras.values():
        assert stats["through_mcpsim"]["n"] == stats["direct"]["n"] == 4 and stats["through_mcpsim"]["p50"] > 0
    assert "lake_move at 2026-07-28 (interleaved)" in stdout


def test_a_port_base_whose_span_does_not_fit_is_refused_by_name(tmp_path):
    argv = [sys.executable, "-m", "mcpsim", "bench", "--protocol", "both", "--json", str(tmp_path / "x.json")]
    result = subprocess.run([*argv, "--port-base", "65000"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "--port-base must be between 1024 and" in result.stderr, result.stderr[-2000:]


def descendants(pid: int) -> dict[int, float]:
    """The descendants of `pid` now, with their start times (for `survivors`)."""
    found = {}
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                found[child.pid] = child.create_time()
    return found


def test_bench_starts_pairs_two_modes_round_by_round_and_leaves_nothing_behind(tmp_path):
    problem = bwrap_problem()
    if problem:
        pytest.skip(problem)
    out = tmp_path / "starts.json"
    base = ports(2000)[0]  # the worker's ports 2000..3399, as the --protocol test's (tests of a worker run in turn)
    argv = [sys.executable, "-m", "mcpsim", "bench", "--starts", "managed-fork,managed-fork-strict", "--rounds", "2"]
    bench = subprocess.Popen(
        [*argv, "--steps", "3", "--port-base", str(base), "--json", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: dict[int, float] = {}
    listening: set[int] = set()
    while bench.poll() is None:
        seen |= descendants(bench.pid)
        listening |= listening_ports(bench.pid)
        time.sleep(0.05)
    stdout, stderr = bench.communicate(timeout=600)
    assert bench.returncode == 0, stderr[-3000:]
    assert len(seen) >= 2 and not survivors(seen), f"left behind: {survivors(seen)}"
    assert len(listening) >= 2 and all(base <= port < base + SPAN for port in listening), listening  # both fronts
    report = json.loads(out.read_text())
    assert set(report) >= {"mcpsim", "machine", "settings", "modes", "samples", "time"}
    assert report["settings"] == {"modes": ["managed-fork", "managed-fork-strict"], "rounds": 2, "steps": 3}
    assert list(report["modes"]) == ["managed-fork", "managed-fork-strict"]
    for mode, row in report["modes"].items():
        assert row["spawn_raw_ms"]["n"] == row["spawn_ms"]["n"] == 2 and row["call_ms"]["n"] == 6
        assert all(row[key]["p50"] > 0 for key in ("spawn_raw_ms", "spawn_ms", "call_ms"))
        assert ("vs_first" in row) == (mode == "managed-fork-strict")
    vs = report["modes"]["managed-fork-strict"]["vs_first"]
    assert vs["first"] == "managed-fork" and vs["rounds"] == 2 and 0 <= vs["slower_fraction"] <= 1
    assert all(isinstance(vs[key], float) for key in ("spawn_raw_ms", "spawn_ms", "call_p50_ms"))
    assert "managed-fork-strict vs managed-fork: start " in stdout and "paired median over 2 rounds" in stdout


@pytest.mark.parametrize(
    ("modes", "words"),
    [
        ("managed-fork", "give at least 2"),
        ("direct,managed", "--starts cannot measure direct"),
        ("managed,bogus", "unknown --starts mode(s) bogus; choose from managed, managed-warm"),
    ],
)
def test_bench_starts_refuses_bad_modes_by_name_before_anything_starts(tmp_path, modes, words):
    argv = [sys.executable, "-m", "mcpsim", "bench", "--starts", modes, "--json", str(tmp_path / "x.json")]
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and words in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not (tmp_path / "x.json").exists()
    assert time.monotonic() - started < 30
