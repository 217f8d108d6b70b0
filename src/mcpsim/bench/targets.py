"""The servers a benchmark drives: a real `mcpsim serve` subprocess, or standalone production servers."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters

from mcpsim.bench.ports import plan
from mcpsim.bench.settings import BENCH_CONFIG, BenchSettings


class ManagedTarget:
    """A real `mcpsim serve` subprocess."""

    start_timeout = 60.0
    """Seconds for the server to be ready (a `--ray` front joins a cluster first)."""

    def __init__(self, settings: BenchSettings, extra: Sequence[str] = ()) -> None:
        self.port = plan().server_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = self.command(settings, extra)
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def command(self, settings: BenchSettings, extra: Sequence[str]) -> list[str]:
        return [
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
            *plan().serve_flags(),
            *extra,
        ]

    def ready(self, health: dict[str, Any]) -> bool:
        # serving, and the environment (and fork template) prepared: starts are what is timed
        return bool(health["environment"]["state"] == "ready")

    async def start(self) -> None:
        with anyio.fail_after(self.start_timeout):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"mcpsim serve exited with {self.process.returncode}")
                try:
                    async with httpx2.AsyncClient() as http:
                        health = await http.get(f"{self.url}/health")
                        if health.status_code == 200 and self.ready(health.json()):
                            return
                except httpx2.HTTPError:
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
        async with httpx2.AsyncClient(timeout=60) as http:
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
        async with httpx2.AsyncClient() as http:
            return [item["pid"] for item in (await http.get(f"{self.url}/api/instances")).json() if item["pid"]]

    async def announce(self, seeds: list[int]) -> None:
        """Announce seeds and wait until their instances are warm: the timed part is what a session then pays."""
        async with httpx2.AsyncClient(timeout=120) as http:
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


class InProcessTarget(ManagedTarget):
    """`SessionEnvServer`: one process keeping one episode per session, no instance processes at all."""

    def command(self, settings: BenchSettings, extra: Sequence[str]) -> list[str]:
        module = "mcpsim.envs.session_server"
        return [sys.executable, "-m", module, "--env", settings.env, "--port", str(self.port), "--max-sessions", "4096"]

    def ready(self, health: dict[str, Any]) -> bool:
        return True

    async def instance_pids(self) -> list[int]:
        return [self.process.pid]


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
        port = plan().server_port()
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


async def wait_until_listening(port: int, seconds: float = 60) -> None:
    """Until a standalone server started for a comparison accepts TCP on loopback (TimeoutError after `seconds`)."""
    with anyio.fail_after(seconds):
        while True:
            try:
                await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                return
            except OSError:
                await anyio.sleep(0.05)
