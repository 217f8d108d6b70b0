"""`mcpsim bench --gateway 4,16,64`: steady-state calls per second with N open sessions, mcpsim against supergateway.

The peer is `supergateway --stateful` (npm), a generic Node gateway that gives every streamable-HTTP session its
own child over stdio, serving the very stdio server `mcpsim serve --env frozen_lake` runs; mcpsim runs with its
fork server. Both are driven by the same minimal HTTP client (no SDK client, whose own CPU would dominate): all N
sessions are opened first (starts are not what is measured here), then each session calls `lake_move` in a loop for
`seconds`, and the answered calls are counted. Targets alternate per round (mcpsim, gateway, mcpsim, ...) and
the ratio is taken per round, then the median, so a shared machine's load weighs on both alike.

supergateway is found at `.mcpsim/tools/node_modules/.bin/supergateway` (`npm install --prefix .mcpsim/tools
supergateway@4`), or wherever `--gateway-bin` says; it is used by this benchmark only.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2

from mcpsim.bench.ports import plan
from mcpsim.bench.settings import BenchSettings
from mcpsim.bench.targets import ManagedTarget, wait_until_listening
from mcpsim.errors import ConfigError

DEFAULT_BIN = Path(".mcpsim/tools/node_modules/.bin/supergateway")
MAX_SESSIONS = 512
"""At most this many sessions per run (`mcpsim serve` in the bench allows 1024 instances)."""
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
VERSION_HEADER = "2025-11-25"


@dataclass(frozen=True)
class GatewaySettings:
    """What `mcpsim bench --gateway` runs; checked when made."""

    sessions: tuple[int, ...] = (4, 16, 64)
    seconds: float = 10.0
    rounds: int = 1
    gateway_bin: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sessions", tuple(self.sessions))
        if not self.sessions or any(n < 1 or n > MAX_SESSIONS for n in self.sessions):
            raise ConfigError(f"--gateway session counts must be between 1 and {MAX_SESSIONS}, got {self.sessions}")
        if not 0.5 <= self.seconds <= 600:
            raise ConfigError("--gateway-seconds must be between 0.5 and 600")
        if self.rounds < 1:
            raise ConfigError("--rounds must be at least 1")

    def binary(self) -> str:
        found = self.gateway_bin or (str(DEFAULT_BIN) if DEFAULT_BIN.exists() else shutil.which("supergateway"))
        if not found or not (Path(found).exists() or shutil.which(found)):
            raise ConfigError(
                "supergateway not found: npm install --prefix .mcpsim/tools supergateway@4, or give --gateway-bin"
            )
        return found


@dataclass
class GatewayRun:
    target: str
    sessions: int
    round: int
    calls: int = 0
    errors: int = 0
    calls_s: float = 0.0
    cpu_ms_per_call: float = 0.0
    """CPU of the server's whole process tree (front and children) per answered call."""
    first_error: str | None = field(default=None)


def _answer(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC answer of a POST, whether it came as JSON or as an SSE stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:") and '"id"' in line:
                return json.loads(line[5:])
        raise RuntimeError(f"no answer in the event stream: {response.text[:200]}")
    return json.loads(response.text)


class RawSession:
    """One handshake-era session driven with plain HTTP posts (what both servers are asked to do)."""

    def __init__(self, http: httpx2.AsyncClient, url: str) -> None:
        self.http, self.url, self.headers, self.next_id = http, url, dict(HEADERS), 1

    async def open(self) -> None:
        client = {"name": "bench", "version": "1"}
        params = {"protocolVersion": VERSION_HEADER, "capabilities": {}, "clientInfo": client}
        response = await self.http.post(self.url, json=self._request("initialize", params), headers=self.headers)
        response.raise_for_status()
        self.headers |= {"mcp-session-id": response.headers["mcp-session-id"], "mcp-protocol-version": VERSION_HEADER}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        (await self.http.post(self.url, json=note, headers=self.headers)).raise_for_status()

    async def call(self, action: str) -> dict[str, Any]:
        request = self._request("tools/call", {"name": "lake_move", "arguments": {"action": action}})
        return _answer(await self.http.post(self.url, json=request, headers=self.headers))

    async def close(self) -> None:
        with anyio.move_on_after(5):
            await self.http.delete(self.url, headers=self.headers)

    def _request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        return {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}


def _tree_cpu_s(pid: int) -> float:
    from mcpsim.bench.rollout import _tree_cpu

    own, below = _tree_cpu(pid)
    return own + below


def _start_gateway(settings: GatewaySettings) -> tuple[subprocess.Popen[bytes], str, int]:
    port = plan().server_port()
    server = f"{sys.executable} -m mcpsim.envs.frozen_lake --seed 1"
    argv = [settings.binary(), "--stdio", server, "--outputTransport", "streamableHttp", "--stateful"]
    argv += ["--port", str(port), "--logLevel", "none"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return process, f"http://127.0.0.1:{port}/mcp", port


async def run_one(target: str, sessions: int, round_no: int, settings: GatewaySettings) -> GatewayRun:
    run = GatewayRun(target, sessions, round_no)
    managed = ManagedTarget(BenchSettings(env="frozen_lake"), ("--fork-server",)) if target == "mcpsim" else None
    if managed is not None:
        process, url = managed.process, f"{managed.url}/mcp?seed=1"
    else:
        process, url, port = _start_gateway(settings)
    try:
        if managed is not None:
            await managed.start()  # serving, and the fork template prepared: starts are not what is measured
        else:
            await wait_until_listening(port)
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=2 * sessions)
        async with httpx2.AsyncClient(timeout=60, limits=limits) as http:
            open_sessions = [RawSession(http, url) for _ in range(sessions)]
            async with anyio.create_task_group() as tg:
                for session in open_sessions:
                    tg.start_soon(session.open)
            for session in open_sessions:  # warm: every child has answered once
                await session.call("LEFT")
            counts = [0] * sessions
            cpu = _tree_cpu_s(process.pid)
            deadline = time.perf_counter() + settings.seconds

            async def loop(index: int) -> None:
                actions = ("LEFT", "DOWN", "RIGHT", "UP")
                while time.perf_counter() < deadline:
                    answer = await open_sessions[index].call(actions[counts[index] % 4])
                    if "result" not in answer:
                        run.errors += 1
                        run.first_error = run.first_error or json.dumps(answer)[:300]
                    counts[index] += 1

            started = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for index in range(sessions):
                    tg.start_soon(loop, index)
            elapsed = time.perf_counter() - started
            cpu = _tree_cpu_s(process.pid) - cpu
            for session in open_sessions:
                await session.close()
        run.calls = sum(counts)
        run.calls_s = round(run.calls / elapsed, 1)
        run.cpu_ms_per_call = round(1000 * cpu / max(1, run.calls), 3)
    finally:
        if managed is not None:
            managed.close()
        else:
            _stop(process)
    return run


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End supergateway and the servers it started (its children are in its session's process group)."""
    for sig, wait in ((15, 10.0), (9, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            os.killpg(process.pid, 9)  # stragglers of the group, if any
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


async def run_gateway_bench(settings: GatewaySettings) -> dict[str, Any]:
    settings.binary()  # refuse at once, before anything starts
    runs: list[GatewayRun] = []
    for round_no in range(settings.rounds):
        for sessions in settings.sessions:
            for target in ("mcpsim", "supergateway"):
                runs.append(await run_one(target, sessions, round_no, settings))
    summary: dict[str, Any] = {}
    for sessions in settings.sessions:
        mine = [r for r in runs if r.sessions == sessions]
        ours = [r for r in mine if r.target == "mcpsim"]
        theirs = [r for r in mine if r.target == "supergateway"]
        ratios = [a.calls_s / b.calls_s for a, b in zip(ours, theirs, strict=True) if b.calls_s]
        summary[str(sessions)] = {
            "mcpsim_calls_s": statistics.median(r.calls_s for r in ours),
            "supergateway_calls_s": statistics.median(r.calls_s for r in theirs),
            "ratio": round(statistics.median(ratios), 3) if ratios else None,
            "mcpsim_cpu_ms_per_call": statistics.median(r.cpu_ms_per_call for r in ours),
            "supergateway_cpu_ms_per_call": statistics.median(r.cpu_ms_per_call for r in theirs),
            "errors": sum(r.errors for r in mine),
        }
    return {
        "kind": "gateway",
        "settings": asdict(settings),
        "load": {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)},
        "summary": summary,
        "runs": [asdict(r) for r in runs],
        "time": time.time(),
    }


def print_gateway(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"steady state, calls/s (medians of {report['settings']['rounds']} round(s))")
    for column in ("sessions", "mcpsim", "supergateway", "ratio", "CPU ms/call mcpsim", "supergateway"):
        table.add_column(column, justify="right")
    for sessions, row in report["summary"].items():
        table.add_row(
            sessions + (f" ({row['errors']} errors)" if row["errors"] else ""),
            f"{row['mcpsim_calls_s']:.0f}",
            f"{row['supergateway_calls_s']:.0f}",
            "-" if row["ratio"] is None else f"{row['ratio']:.2f}x",
            f"{row['mcpsim_cpu_ms_per_call']:.2f}",
            f"{row['supergateway_cpu_ms_per_call']:.2f}",
        )
    Console(width=None if sys.stdout.isatty() else 150).print(table)
