"""`mcpsim bench --protocol 2026-07-28|2025-11-25`: per-call latency of `lake_move` through mcpsim in one era.

One `mcpsim serve` (FrozenLake, stdio backend) and the official SDK client on `/mcp`: in the handshake era one
session (`mode="legacy"`); at 2026-07-28 stateless requests (`mode="2026-07-28"`) that follow the handle the
first result names (`_meta["mcpsim/handle"]`). After a warm-up, `calls` sequential calls are timed; the same is
measured against a standalone FrozenLake over streamable HTTP (the SDK server serves both eras), so the
difference is what mcpsim adds in that era.
"""

import os
import subprocess
import sys
import time
from typing import Any
from urllib.parse import quote

import anyio
from mcp import Client

from mcpsim.bench.ports import plan
from mcpsim.bench.settings import BENCH_CONFIG, BenchSettings, percentiles
from mcpsim.bench.targets import ManagedTarget, wait_until_listening
from mcpsim.wire import HANDLE_META_KEY

PROTOCOLS = ("2026-07-28", "2025-11-25")
"""`--protocol both` measures the two eras interleaved (one call of each in turn), so both see the same load."""
WARMUP = 20


def mode_of(protocol: str) -> str:
    return "2026-07-28" if protocol == "2026-07-28" else "legacy"


async def timed_calls(url: str, protocol: str, calls: int) -> list[float]:
    """`calls` timed `lake_move`s after `WARMUP` untimed ones, on one episode (its handle, at 2026-07-28)."""
    async with Client(url, mode=mode_of(protocol)) as client:  # type: ignore[arg-type]
        first = await client.call_tool("lake_move", {"action": "LEFT"})
        handle = (first.meta or {}).get(HANDLE_META_KEY)
        meta = {HANDLE_META_KEY: handle} if isinstance(handle, str) else None
        for _ in range(WARMUP):
            await client.call_tool("lake_move", {"action": "LEFT"}, meta=meta)
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            await client.call_tool("lake_move", {"action": "LEFT"}, meta=meta)
            samples.append((time.perf_counter() - started) * 1000)
        return samples


async def interleaved(url: str, calls: int) -> dict[str, list[float]]:
    """Both eras against `url` at once: one episode each, calls alternating, so load changes hit both alike."""
    samples: dict[str, list[float]] = {protocol: [] for protocol in PROTOCOLS}
    async with Client(url, mode="2026-07-28") as modern, Client(url, mode="legacy") as legacy:
        first = await modern.call_tool("lake_move", {"action": "LEFT"})
        handle = (first.meta or {}).get(HANDLE_META_KEY)
        meta = {HANDLE_META_KEY: handle} if isinstance(handle, str) else None
        clients = {"2026-07-28": (modern, meta), "2025-11-25": (legacy, None)}
        for round_ in range(WARMUP + calls):
            for protocol, (client, extra) in clients.items():
                started = time.perf_counter()
                await client.call_tool("lake_move", {"action": "LEFT"}, meta=extra)
                if round_ >= WARMUP:
                    samples[protocol].append((time.perf_counter() - started) * 1000)
    return samples


async def direct(protocol: str, calls: int) -> list[float]:
    port = plan().server_port()
    argv = [sys.executable, "-m", "mcpsim.envs.frozen_lake", "--seed", "1", "--transport", "http", "--port", str(port)]
    env = {**os.environ, "MCPSIM_CONFIG": BENCH_CONFIG}
    server = await anyio.open_process(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_until_listening(port)
        url = f"http://127.0.0.1:{port}/mcp"
        if protocol == "both":
            return await interleaved(url, calls)  # type: ignore[return-value]
        return await timed_calls(url, protocol, calls)
    finally:
        server.terminate()
        with anyio.move_on_after(10):
            await server.wait()


async def run_protocol(protocol: str, calls: int) -> dict[str, Any]:
    target = ManagedTarget(BenchSettings(), ["--fork-server"])
    try:
        await target.start()
        url = f"{target.url}/mcp?seed=1&config={quote(BENCH_CONFIG)}"
        if protocol == "both":
            through_both = await interleaved(url, calls)
        else:
            through = percentiles(await timed_calls(url, protocol, calls))
    finally:
        target.close()
    if protocol == "both":
        alone_both: dict[str, list[float]] = await direct("both", calls)  # type: ignore[assignment]
        return {
            "protocol": "both",
            "calls": calls,
            "eras": {
                era: {"through_mcpsim": percentiles(through_both[era]), "direct": percentiles(alone_both[era])}
                for era in PROTOCOLS
            },
        }
    alone = percentiles(await direct(protocol, calls))
    return {"protocol": protocol, "calls": calls, "through_mcpsim": through, "direct": alone}


def print_protocol(result: dict[str, Any]) -> None:
    if result["protocol"] == "both":
        for era, stats in result["eras"].items():
            print_protocol({"protocol": f"{era} (interleaved)", "calls": result["calls"], **stats})
        return
    through, alone = result["through_mcpsim"], result["direct"]
    print(
        f"lake_move at {result['protocol']}, {result['calls']} sequential calls: through mcpsim p50 "
        f"{through['p50']:.2f} ms (p95 {through['p95']:.2f}); direct p50 {alone['p50']:.2f} ms "
        f"(p95 {alone['p95']:.2f}); mcpsim adds {through['p50'] - alone['p50']:.2f} ms"
    )
