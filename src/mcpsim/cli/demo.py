"""`mcpsim demo`: the managed server in-process, a random policy on 8 FrozenLake seeds, a summary table.

It runs the whole stack a user would: `mcpsim.make` + `mcpsim.rollout` (the official MCP client, one session per
seed against `/mcp?seed=N`) on the managed server, so it is also the shortest end-to-end check that serving,
proxying, the client and cleanup work on a machine.
"""

import argparse
import logging
import time
from typing import TYPE_CHECKING

import anyio
import psutil
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from mcpsim.trajectory import Trajectory


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="serve FrozenLake in-process and roll out a random policy on 8 seeds")
    p.add_argument("--episodes", type=int, default=8)
    p.add_argument("--steps", type=int, default=30)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return anyio.run(run_demo, args.episodes, args.steps)


def outcome(trajectory: "Trajectory") -> str:
    """FrozenLake's words for how an episode ended."""
    if trajectory.error:
        return f"error: {trajectory.error['message']}"
    if trajectory.terminated:
        return "goal" if trajectory.total_reward > 0 else "hole"
    return "truncated" if trajectory.outcome == "truncated" else "timeout"


async def run_demo(episodes: int = 8, max_steps: int = 30) -> int:
    from mcpsim.client import RandomPolicy, make, rollout
    from mcpsim.pool import PoolConfig, for_env
    from mcpsim.server import ServeConfig, running
    from mcpsim.server.ops import configure_logging

    configure_logging("text", logging.WARNING)
    console = Console()
    config = ServeConfig(pool=PoolConfig(for_env("frozen_lake"), fork_server=True), port=0)
    started = time.perf_counter()
    async with running(config) as url:
        console.print(f"managed server at {url}/mcp, FrozenLake, {episodes} seeds, random policy")
        envs = make(f"{url}/mcp", seeds=range(episodes))
        trajectories = await rollout(envs, RandomPolicy(0), steps=max_steps)
    elapsed = time.perf_counter() - started
    table = Table(title=f"FrozenLake, random policy, {episodes} episodes in {elapsed:.1f} s")
    for column in ("seed", "steps", "reward", "outcome"):
        table.add_column(column, justify="right" if column != "outcome" else "left")
    for trajectory in sorted(trajectories, key=lambda t: t.seed):
        reward = f"{trajectory.total_reward:.1f}"
        table.add_row(str(trajectory.seed), str(len(trajectory.steps)), reward, outcome(trajectory))
    console.print(table)
    leftovers = [p for p in psutil.Process().children(recursive=True) if p.is_running()]
    console.print(f"instances left running: {len(leftovers)}")
    failed = [t for t in trajectories if t.error]
    return 0 if not leftovers and not failed and len(trajectories) == episodes else 1
