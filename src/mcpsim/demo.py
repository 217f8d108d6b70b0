"""`mcpsim demo`: the managed server in-process, a random policy on 8 FrozenLake seeds, a summary table.

It uses nothing but the official MCP client against `/mcp?seed=N`, so it is also the shortest end-to-end
check that serving, proxying and cleanup work on a machine.
"""

import logging
import random
import time
from typing import Any

import anyio
import psutil
from mcp import Client
from rich.console import Console
from rich.table import Table

from mcpsim.envs.frozen_lake import ACTIONS
from mcpsim.pool.command import for_env
from mcpsim.pool.pool import PoolConfig
from mcpsim.server.app import ServeConfig
from mcpsim.server.logs import configure_logging
from mcpsim.server.run import running


async def play(url: str, seed: int, max_steps: int) -> dict[str, Any]:
    rng = random.Random(seed)
    outcome = "timeout"
    reward = 0.0
    steps = 0
    async with Client(f"{url}/mcp?seed={seed}", mode="legacy") as client:
        await client.read_resource("game://initial_state")
        while steps < max_steps:
            result = await client.call_tool("lake_move", {"action": rng.choice(ACTIONS)})
            info = (result.meta or {}).get("mcpsim", {})
            steps = info.get("step", steps + 1)
            reward += float(info.get("reward", 0.0))
            if info.get("terminated"):
                outcome = "goal" if reward > 0 else "hole"
                break
            if info.get("truncated"):
                outcome = "truncated"
                break
    return {"seed": seed, "steps": steps, "reward": reward, "outcome": outcome}


async def run_demo(episodes: int = 8, max_steps: int = 30) -> int:
    configure_logging("text", logging.WARNING)
    console = Console()
    config = ServeConfig(pool=PoolConfig(for_env("frozen_lake")), port=0)
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    async with running(config) as url:
        console.print(f"managed server at {url}/mcp, FrozenLake, {episodes} seeds, random policy")

        async def one(seed: int) -> None:
            results.append(await play(url, seed, max_steps))

        async with anyio.create_task_group() as tg:
            for seed in range(episodes):
                tg.start_soon(one, seed)
    elapsed = time.perf_counter() - started
    table = Table(title=f"FrozenLake, random policy, {episodes} episodes in {elapsed:.1f} s")
    for column in ("seed", "steps", "reward", "outcome"):
        table.add_column(column, justify="right" if column != "outcome" else "left")
    for row in sorted(results, key=lambda r: r["seed"]):
        table.add_row(str(row["seed"]), str(row["steps"]), f"{row['reward']:.1f}", row["outcome"])
    console.print(table)
    leftovers = [p for p in psutil.Process().children(recursive=True) if p.is_running()]
    console.print(f"instances left running: {len(leftovers)}")
    return 0 if not leftovers and len(results) == episodes else 1
