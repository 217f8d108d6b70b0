"""`mcpsim bench`: how fast sessions start, how much a proxied call costs, how much an instance weighs.

Every mode drives FrozenLake with the official MCP client from this process, against servers in other processes
(a real `mcpsim serve`, or standalone production servers for `direct`), so the numbers include everything a user
pays. Calls move LEFT from the start cell, which keeps every call a real step (the agent bumps the wall) for as
long as the benchmark runs. `--compare` runs several modes back to back and prints ratios against the first,
which holds up on a noisy machine better than absolute numbers do.

Modes: `direct` (the client talks streamable HTTP to one standalone production server per session; its spawn
time is a stdio start of the server by the client), `managed` (plain spawn per session), `managed-warm`
(`--warm` instances started before the sessions), `managed-fork` (`--fork-server`).
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio
import httpx
import psutil
from mcp import Client, StdioServerParameters

from mcpsim import __version__
from mcpsim.pool.ports import free_port

MODES = ("direct", "managed", "managed-warm", "managed-fork")
BENCH_CONFIG = '{"max_steps": 1000000}'


@dataclass
class BenchSettings:
    sessions: int = 20
    steps: int = 200
    concurrency: int = 1
    burst: int = 64
    memory_sessions: int = 16
    live: int = 0
    env: str = "frozen_lake"


@dataclass
class ModeResult:
    mode: str
    spawn_ms: dict[str, float] = field(default_factory=dict)
    """New session to first tool result with the official Python SDK client."""
    spawn_raw_ms: dict[str, float] = field(default_factory=dict)
    """The same with a minimal HTTP client (managed modes): the server's share."""
    call_ms: dict[str, float] = field(default_factory=dict)
    throughput_calls_s: float = 0.0
    burst_ready_s: float | None = None
    burst_errors: int = 0
    rss_mb: float | None = None
    uss_mb: float | None = None
    live: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "p50": pick(0.5),
        "p95": pick(0.95),
        "p99": pick(0.99),
        "mean": round(statistics.fmean(ordered), 3),
        "n": len(ordered),
    }


# -- targets ------------------------------------------------------------------------------------------------------


class ManagedTarget:
    """A real `mcpsim serve` subprocess."""

    def __init__(self, settings: BenchSettings, extra: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            sys.executable,
            "-m",
            "mcpsim",
            "serve",
            "--port",
            str(self.port),
            "--env",
            settings.env,
            "--max-instances",
            "1024",
            "--log-format",
            "json",
            *extra,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def start(self) -> None:
        with anyio.fail_after(60):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"mcpsim serve exited with {self.process.returncode}")
                try:
                    async with httpx.AsyncClient() as http:
                        health = await http.get(f"{self.url}/health")
                        # serving, and the environment (and fork template) prepared: starts are what is timed
                        if health.status_code == 200 and health.json()["environment"]["state"] == "ready":
                            return
                except httpx.HTTPError:
                    pass
                await anyio.sleep(0.05)

    def client(self, seed: int) -> Client:
        return Client(f"{self.url}/mcp?seed={seed}&config={BENCH_CONFIG}", mode="legacy")

    async def raw_first_result_ms(self, seed: int) -> float:
        """New session to first tool result with a minimal HTTP client (initialize, initialized, one call):
        what the server costs, without the SDK client's own work."""
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "1"},
            },
        }
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "lake_move", "arguments": {"action": "LEFT"}},
        }
        async with httpx.AsyncClient(timeout=60) as http:
            started = time.perf_counter()
            opened = await http.post(f"{self.url}/mcp?seed={seed}&config={BENCH_CONFIG}", json=init, headers=headers)
            session = {
                **headers,
                "mcp-session-id": opened.headers["mcp-session-id"],
                "mcp-protocol-version": "2025-11-25",
            }
            await http.post(
                f"{self.url}/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session
            )
            answer = await http.post(f"{self.url}/mcp", json=call, headers=session)
            elapsed = (time.perf_counter() - started) * 1000
            if '"mcpsim"' not in answer.text:
                raise RuntimeError(f"unexpected answer: {answer.text[:200]}")
            await http.delete(f"{self.url}/mcp", headers=session)
            return elapsed

    async def instance_pids(self) -> list[int]:
        async with httpx.AsyncClient() as http:
            return [item["pid"] for item in (await http.get(f"{self.url}/api/instances")).json() if item["pid"]]

    async def announce(self, seeds: list[int]) -> None:
        """Announce seeds and wait until their instances are warm: the timed part is what a session then pays."""
        async with httpx.AsyncClient(timeout=120) as http:
            response = await http.post(
                f"{self.url}/api/instances", json={"seeds": seeds, "config": json.loads(BENCH_CONFIG)}
            )
            response.raise_for_status()
            with anyio.fail_after(600):
                while True:
                    listing = (await http.get(f"{self.url}/api/instances")).json()
                    if sum(item["warm"] and item["state"] == "ready" for item in listing) >= len(seeds):
                        return
                    await anyio.sleep(0.1)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


class DirectTarget:
    """Standalone production servers, one per session: HTTP for calls, a client-spawned stdio server for starts."""

    def __init__(self, settings: BenchSettings) -> None:
        self.settings = settings
        self.servers: list[anyio.abc.Process] = []

    def stdio_client(self, seed: int) -> Client:
        module = f"mcpsim.envs.{self.settings.env}"
        env = {"MCPSIM_CONFIG": BENCH_CONFIG}
        return Client(
            StdioServerParameters(command=sys.executable, args=["-m", module, "--seed", str(seed)], env=env),
            mode="legacy",
        )

    async def http_client(self, seed: int) -> Client:
        port = free_port()
        argv = [sys.executable, "-m", f"mcpsim.envs.{self.settings.env}", "--seed", str(seed)]
        server = await anyio.open_process(
            [*argv, "--transport", "http", "--port", str(port)],
            env={**os.environ, "MCPSIM_CONFIG": BENCH_CONFIG},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.servers.append(server)
        with anyio.fail_after(60):
            while True:
                try:
                    stream = await anyio.connect_tcp("127.0.0.1", port)
                    await stream.aclose()
                    break
                except OSError:
                    await anyio.sleep(0.02)
        return Client(f"http://127.0.0.1:{port}/mcp", mode="legacy")

    def pids(self) -> list[int]:
        return [server.pid for server in self.servers]

    async def close(self) -> None:
        for server in self.servers:
            server.terminate()
        for server in self.servers:
            with anyio.move_on_after(10) as scope:
                await server.wait()
            if scope.cancelled_caught:
                server.kill()


# -- measurements -------------------------------------------------------------------------------------------------


async def first_result_ms(client: Client) -> float:
    started = time.perf_counter()
    async with client:
        await client.call_tool("lake_move", {"action": "LEFT"})
        return (time.perf_counter() - started) * 1000


async def calls(client_factory: Any, settings: BenchSettings) -> tuple[list[float], float]:
    """`concurrency` sessions each making `steps` calls at once; per-call latencies and calls per second."""
    latencies: list[float] = []

    async def session(seed: int) -> None:
        async with await client_factory(seed) as client:
            await client.call_tool("lake_move", {"action": "LEFT"})  # warm the session up
            ready.append(seed)
            if len(ready) == settings.concurrency:
                all_ready.set()
            await go.wait()
            for _ in range(settings.steps):
                started = time.perf_counter()
                await client.call_tool("lake_move", {"action": "LEFT"})
                latencies.append((time.perf_counter() - started) * 1000)

    ready: list[int] = []
    go, all_ready = anyio.Event(), anyio.Event()
    async with anyio.create_task_group() as tg:
        for seed in range(settings.concurrency):
            tg.start_soon(session, 1000 + seed)
        await all_ready.wait()
        started = time.perf_counter()
        go.set()
    elapsed = time.perf_counter() - started
    return latencies, len(latencies) / elapsed


def memory_mb(pids: list[int]) -> tuple[float | None, float | None]:
    rss, uss = [], []
    for pid in pids:
        try:
            info = psutil.Process(pid).memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss.append(info.rss / 2**20)
        uss.append(info.uss / 2**20)
    if not rss:
        return None, None
    return round(statistics.fmean(rss), 1), round(statistics.fmean(uss), 1)


async def bench_managed(mode: str, settings: BenchSettings) -> ModeResult:
    result = ModeResult(mode)
    extra = {"managed": [], "managed-fork": ["--fork-server"], "managed-warm": []}[mode]
    target = ManagedTarget(settings, extra)
    try:
        await target.start()
        seeds = list(range(settings.sessions))
        if mode == "managed-warm":
            await target.announce(seeds)
        result.spawn_ms = percentiles([await first_result_ms(target.client(seed)) for seed in seeds])
        raw_seeds = [700 + seed for seed in seeds]
        if mode == "managed-warm":
            await target.announce(raw_seeds)
        result.spawn_raw_ms = percentiles([await target.raw_first_result_ms(seed) for seed in raw_seeds])

        async def managed_client(seed: int) -> Client:
            return target.client(seed)

        latencies, result.throughput_calls_s = await calls(managed_client, settings)
        result.call_ms = percentiles(latencies)
        await measure_burst(result, target, settings, mode)
        await measure_memory(result, target, settings)
        if settings.live:
            result.live = await measure_live(target, settings.live)
    finally:
        target.close()
    return result


async def measure_burst(result: ModeResult, target: ManagedTarget, settings: BenchSettings, mode: str) -> None:
    if settings.burst <= 0:
        return
    seeds = list(range(5000, 5000 + settings.burst))
    if mode == "managed-warm":
        await target.announce(seeds)
    started = time.perf_counter()

    def settle() -> None:
        if len(done) + result.burst_errors == len(seeds):
            all_settled.set()

    async def one(seed: int) -> None:
        try:
            async with target.client(seed) as client:
                await client.call_tool("lake_move", {"action": "LEFT"})
                done.append(time.perf_counter() - started)
                settle()
                await all_settled.wait()  # hold every session open until all are up
        except Exception as exc:  # a benchmark counts failures instead of stopping
            result.burst_errors += 1
            result.errors.append(repr(exc)[:200])
            settle()

    done: list[float] = []
    all_settled = anyio.Event()
    async with anyio.create_task_group() as tg:
        for seed in seeds:
            tg.start_soon(one, seed)
    result.burst_ready_s = round(max(done), 3) if done else None


async def measure_memory(result: ModeResult, target: ManagedTarget, settings: BenchSettings) -> None:
    opened = anyio.Event()
    release = anyio.Event()
    count = 0

    async def hold(seed: int) -> None:
        nonlocal count
        async with target.client(seed) as client:
            await client.call_tool("lake_move", {"action": "LEFT"})
            count += 1
            if count == settings.memory_sessions:
                opened.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        for seed in range(settings.memory_sessions):
            tg.start_soon(hold, 9000 + seed)
        await opened.wait()
        pids = await target.instance_pids()
        result.rss_mb, result.uss_mb = await anyio.to_thread.run_sync(memory_mb, pids)
        release.set()


async def measure_live(target: ManagedTarget, count: int) -> dict[str, Any]:
    """Hold `count` sessions open at once, call each, and weigh the whole process tree."""
    errors: list[str] = []
    opened = 0
    all_open, release = anyio.Event(), anyio.Event()
    limiter = anyio.CapacityLimiter(32)  # how many sessions are being opened at a time, not how many are held
    started = time.perf_counter()

    async def hold(seed: int) -> None:
        nonlocal opened
        try:
            async with limiter:
                client = target.client(20000 + seed)
                await client.__aenter__()
            try:
                await client.call_tool("lake_move", {"action": "LEFT"})
                opened += 1
                if opened + len(errors) == count:
                    all_open.set()
                await release.wait()
                await client.call_tool("lake_move", {"action": "LEFT"})
            finally:
                await client.__aexit__(None, None, None)
        except Exception as exc:  # counted, reported
            errors.append(repr(exc)[:200])
            if opened + len(errors) == count:
                all_open.set()

    async with anyio.create_task_group() as tg:
        for seed in range(count):
            tg.start_soon(hold, seed)
        await all_open.wait()
        open_s = time.perf_counter() - started
        pids = await target.instance_pids()
        tree = await anyio.to_thread.run_sync(tree_memory_mb, target.process.pid)
        release.set()
    return {
        "sessions": count,
        "open": opened,
        "errors": len(errors),
        "error_samples": errors[:5],
        "instances_listed": len(pids),
        "open_s": round(open_s, 2),
        **tree,
    }


def tree_memory_mb(root: int) -> dict[str, float]:
    processes = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    rss = uss = 0.0
    for proc in processes:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss / 2**20
        uss += info.uss / 2**20
    return {"tree_processes": len(processes), "tree_rss_mb": round(rss), "tree_uss_mb": round(uss)}


async def bench_direct(settings: BenchSettings) -> ModeResult:
    result = ModeResult("direct")
    target = DirectTarget(settings)
    try:
        result.spawn_ms = percentiles([await first_result_ms(target.stdio_client(s)) for s in range(settings.sessions)])
        latencies, result.throughput_calls_s = await calls(target.http_client, settings)
        result.call_ms = percentiles(latencies)
        result.rss_mb, result.uss_mb = await anyio.to_thread.run_sync(memory_mb, target.pids())
    finally:
        await target.close()
    return result


async def run_bench(modes: list[str], settings: BenchSettings) -> dict[str, Any]:
    results = []
    for mode in modes:
        results.append(await bench_direct(settings) if mode == "direct" else await bench_managed(mode, settings))
    return {
        "mcpsim": __version__,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": asdict(settings),
        "results": [asdict(r) for r in results],
        "time": time.time(),
    }


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
