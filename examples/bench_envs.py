"""Measurements for the production envs (numbers quoted in docs/envs.md). Not a test: timings, on this machine.

python examples/bench_envs.py lander   [--steps 300]     # LunarLander: time per step, with and without images
python examples/bench_envs.py sessions [--sessions 32]   # per-session cost: SessionEnvServer vs mcpsim serve
"""

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import anyio
import httpx2
import psutil
from mcp import Client, StdioServerParameters

from mcpsim.proc import free_port


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[int(0.95 * (len(values) - 1))]
    return f"median {statistics.median(values):6.2f} ms, p95 {p95:6.2f} ms (n={len(values)})"


def lander_in_process(steps: int, images: bool) -> list[float]:
    from mcpsim.envs.gym_server import Episode
    from mcpsim.envs.lunar_lander import SPEC

    times, seed = [], 0
    episode = Episode(SPEC, seed, {"images": images})
    while len(times) < steps:
        started = time.perf_counter()
        episode.step_result(("NOTHING", "FIRE_MAIN", "FIRE_LEFT", "FIRE_RIGHT")[len(times) % 4])
        times.append((time.perf_counter() - started) * 1000)
        if episode.done:
            seed += 1
            episode = Episode(SPEC, seed, {"images": images})
    return times


async def lander_over_stdio(steps: int, images: bool) -> list[float]:
    config = {"MCPSIM_CONFIG": '{"images": %s, "max_steps": 100000}' % ("true" if images else "false")}
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcpsim.envs.lunar_lander", "--seed", "0"],
                                   env=config)  # fmt: skip
    times: list[float] = []
    async with Client(params, mode="legacy") as client:
        while len(times) < steps:
            started = time.perf_counter()
            result = await client.call_tool("lander_action", {"action": "FIRE_MAIN" if len(times) % 3 else "NOTHING"})
            if result.is_error:  # crashed or landed: the server keeps one episode, so stop here
                break
            times.append((time.perf_counter() - started) * 1000)
    return times


def bench_lander(steps: int) -> None:
    for images in (True, False):
        label = "with images   " if images else "without images"
        print(f"LunarLander step in-process {label}: {ms(lander_in_process(steps, images))}")
    for images in (True, False):
        label = "with images   " if images else "without images"
        print(f"LunarLander tools/call over stdio {label}: {ms(anyio.run(lander_over_stdio, steps, images))}")


@contextlib.contextmanager
def process(argv: list[str], health: str) -> Iterator[psutil.Process]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(health, timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv} did not start") from None
                time.sleep(0.1)
        yield psutil.Process(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)


def memory(root: psutil.Process) -> tuple[float, float]:
    """RSS and USS (pages only these processes hold) of a process and its descendants, in MB."""
    rss = uss = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            info = proc.memory_full_info()
            rss, uss = rss + info.rss, uss + info.uss
    return rss / 2**20, uss / 2**20


async def one_at_a_time(url: str, tool: str, action: str, sessions: int = 8) -> None:
    """Latency without contention: open a session, first call, then 20 calls; one session after the other."""
    opened: list[float] = []
    steps: list[float] = []
    for seed in range(100, 100 + sessions):
        started = time.perf_counter()
        async with Client(f"{url}/mcp?seed={seed}", mode="legacy") as client:
            await client.call_tool(tool, {"action": action})
            opened.append((time.perf_counter() - started) * 1000)
            for _ in range(20):
                t = time.perf_counter()
                result = await client.call_tool(tool, {"action": action})
                if not result.is_error:
                    steps.append((time.perf_counter() - t) * 1000)
    print(f"  one session at a time: open + first call {ms(opened)}; one tool call {ms(steps)}")


async def sessions_cost(url: str, root: psutil.Process, sessions: int, env: str) -> None:
    tool, action = {"frozen_lake": ("lake_move", "UP"), "lunar_lander": ("lander_action", "NOTHING")}[env]
    await one_at_a_time(url, tool, action)
    await anyio.sleep(1)
    before = memory(root)
    opened: list[float] = []
    steps: list[float] = []
    ready = anyio.Event()
    done = anyio.Event()
    count = 0

    async def session(seed: int) -> None:
        nonlocal count
        started = time.perf_counter()
        async with Client(f"{url}/mcp?seed={seed}", mode="legacy") as client:
            await client.call_tool(tool, {"action": action})
            opened.append((time.perf_counter() - started) * 1000)
            for _ in range(20):
                t = time.perf_counter()
                result = await client.call_tool(tool, {"action": action})
                if not result.is_error:
                    steps.append((time.perf_counter() - t) * 1000)
            count += 1
            if count == sessions:
                ready.set()
            await done.wait()  # hold every session open while memory is measured

    async with anyio.create_task_group() as tg:
        for seed in range(sessions):
            tg.start_soon(session, seed)
        await ready.wait()
        await anyio.sleep(0.5)
        during = memory(root)
        done.set()
    print(f"  {sessions} sessions at once: open + first call {ms(opened)}; one tool call {ms(steps)}")
    print(f"  memory: RSS {before[0]:.0f} -> {during[0]:.0f} MB, USS {before[1]:.0f} -> {during[1]:.0f} MB; "
          f"per session RSS {(during[0] - before[0]) / sessions:.2f} MB, USS {(during[1] - before[1]) / sessions:.2f} MB")  # fmt: skip


def bench_sessions(sessions: int, env: str) -> None:
    port = free_port()
    print(f"SessionEnvServer ({env}, {sessions} sessions):")
    argv = [sys.executable, "-m", "mcpsim.envs.session_server", "--env", env, "--port", str(port)]
    with process(argv, f"http://127.0.0.1:{port}/health") as root:
        anyio.run(sessions_cost, f"http://127.0.0.1:{port}", root, sessions, env)
    port = free_port()
    print(f"mcpsim serve --env {env} ({sessions} sessions, one process each):")
    argv = [sys.executable, "-m", "mcpsim", "serve", "--env", env, "--port", str(port)]
    with process(argv, f"http://127.0.0.1:{port}/health") as root:
        anyio.run(sessions_cost, f"http://127.0.0.1:{port}", root, sessions, env)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("lander").add_argument("--steps", type=int, default=300)
    s = sub.add_parser("sessions")
    s.add_argument("--sessions", type=int, default=32)
    s.add_argument("--env", choices=["frozen_lake", "lunar_lander"], default="frozen_lake")
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {sys.version.split()[0]}"
    )
    if args.what == "lander":
        bench_lander(args.steps)
    else:
        bench_sessions(args.sessions, args.env)


if __name__ == "__main__":
    main()
