"""`mcpsim bench --matrix`: per-call latency for every front/backend transport pair, and direct baselines.

For each backend transport (stdio, streamable HTTP, SSE) one `mcpsim serve` runs; each front (streamable HTTP
`/mcp`, SSE `/sse`, and `mcpsim serve --stdio` launched by the client) opens one FrozenLake session through it
and times `calls` sequential `lake_move` calls after a warm-up. The direct rows are the client talking to a
standalone FrozenLake server over the same transport as that front, so `pair - direct(front)` is what mcpsim
adds for that pair.
"""

import os
import subprocess
import sys
import time
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client

from mcpsim.bench.ports import plan
from mcpsim.bench.settings import BENCH_CONFIG, BenchSettings, percentiles
from mcpsim.bench.targets import ManagedTarget, wait_until_listening

FRONTS = ("streamable-http", "sse", "stdio")
BACKENDS = ("stdio", "http", "sse")
WARMUP = 20


async def timed_calls(client: Client, calls: int) -> list[float]:
    async with client:
        for _ in range(WARMUP):
            await client.call_tool("lake_move", {"action": "LEFT"})
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            await client.call_tool("lake_move", {"action": "LEFT"})
            samples.append((time.perf_counter() - started) * 1000)
        return samples


def front_client(front: str, url: str, backend: str) -> Client:
    if front == "streamable-http":
        return Client(f"{url}/mcp?seed=1&config={BENCH_CONFIG}", mode="legacy")
    if front == "sse":
        return Client(sse_client(f"{url}/sse?seed=1&config={BENCH_CONFIG}"), mode="legacy")
    argv = [
        "-m",
        "mcpsim",
        "serve",
        "--stdio",
        "--env",
        "frozen_lake",
        "--seed",
        "1",
        "--config",
        BENCH_CONFIG,
        "--backend-transport",
        backend,
        "--log-level",
        "warning",
    ]
    return Client(StdioServerParameters(command=sys.executable, args=argv), mode="legacy")


async def direct_calls(front: str, calls: int) -> list[float]:
    """The client to a standalone FrozenLake over the front's transport."""
    env = {"MCPSIM_CONFIG": BENCH_CONFIG}
    module = ["-m", "mcpsim.envs.frozen_lake", "--seed", "1"]
    if front == "stdio":
        return await timed_calls(
            Client(StdioServerParameters(command=sys.executable, args=module, env=env), mode="legacy"), calls
        )
    port = plan().server_port()
    transport = "http" if front == "streamable-http" else "sse"
    server = await anyio.open_process(
        [sys.executable, *module, "--transport", transport, "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_until_listening(port)
        url = f"http://127.0.0.1:{port}"
        client = (
            Client(f"{url}/mcp", mode="legacy")
            if transport == "http"
            else Client(sse_client(f"{url}/sse"), mode="legacy")
        )
        return await timed_calls(client, calls)
    finally:
        server.terminate()
        with anyio.move_on_after(10):
            await server.wait()


async def run_matrix(calls: int) -> dict[str, Any]:
    pairs: dict[str, dict[str, float]] = {}
    for backend in BACKENDS:
        target = ManagedTarget(BenchSettings(), ["--backend-transport", backend])
        try:
            await target.start()
            for front in FRONTS:
                pairs[f"{front}->{backend}"] = percentiles(
                    await timed_calls(front_client(front, target.url, backend), calls)
                )
        finally:
            target.close()
    direct = {front: percentiles(await direct_calls(front, calls)) for front in FRONTS}
    return {"calls": calls, "pairs": pairs, "direct": direct}


def print_matrix(matrix: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"per-call latency p50 ms (p95), {matrix['calls']} calls per pair; + what mcpsim adds")
    table.add_column("front \\ backend")
    for backend in BACKENDS:
        table.add_column(backend, justify="right")
    table.add_column("direct over the front's transport", justify="right")
    for front in FRONTS:
        base = matrix["direct"][front]["p50"]
        cells = []
        for backend in BACKENDS:
            stats = matrix["pairs"][f"{front}->{backend}"]
            cells.append(f"{stats['p50']:.2f} ({stats['p95']:.2f}) +{stats['p50'] - base:.2f}")
        direct = matrix["direct"][front]
        table.add_row(front, *cells, f"{direct['p50']:.2f} ({direct['p95']:.2f})")
    Console().print(table)
