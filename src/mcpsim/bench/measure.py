"""The measurements: first results, call latencies, bursts of new sessions, memory, many live sessions."""

import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import psutil
from mcp import Client

from mcpsim.bench.settings import BenchSettings, ModeResult
from mcpsim.bench.targets import ManagedTarget


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


def memory_mb(pids: list[int], trees: bool = False) -> tuple[float | None, float | None]:
    """Mean RSS and USS (MB) of `pids`; with `trees`, of each one's whole process tree (summed), which is an
    instance's cost: under `--sandbox` the pid `/api/instances` gives is bwrap's (a few MB), and the server,
    its init and its relay are below it."""
    rss, uss = [], []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)] if trees else [root]
            infos = [proc.memory_full_info() for proc in tree]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss.append(sum(info.rss for info in infos) / 2**20)
        uss.append(sum(info.uss for info in infos) / 2**20)
    if not rss:
        return None, None
    return round(statistics.fmean(rss), 1), round(statistics.fmean(uss), 1)


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
    """RSS/USS per instance (its process tree) while `memory_sessions` sessions are open."""
    async with holding_sessions(target, settings):
        pids = await target.instance_pids()
        result.rss_mb, result.uss_mb = await anyio.to_thread.run_sync(memory_mb, pids, True)


async def measure_session_growth(result: ModeResult, target: ManagedTarget, settings: BenchSettings) -> None:
    """For one process serving every session: how much it grows per open session (there is no instance to weigh).
    Run on a fresh server: memory freed by ended sessions stays in the process and would hide the growth."""
    pids = await target.instance_pids()
    await first_result_ms(target.client(8999))  # lazily imported code is not a session's cost
    before = await anyio.to_thread.run_sync(memory_mb, pids)
    async with holding_sessions(target, settings):
        after = await anyio.to_thread.run_sync(memory_mb, pids)
    if None not in before and None not in after:
        rss = (after[0] - before[0]) / settings.memory_sessions  # type: ignore[operator]
        uss = (after[1] - before[1]) / settings.memory_sessions  # type: ignore[operator]
        result.rss_mb, result.uss_mb = round(max(rss, 0.0), 2), round(max(uss, 0.0), 2)


@contextlib.asynccontextmanager
async def holding_sessions(target: ManagedTarget, settings: BenchSettings) -> AsyncIterator[None]:
    """`memory_sessions` sessions open (each has made a call) for the duration of the block."""
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
        try:
            yield
        finally:
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
            async with contextlib.AsyncExitStack() as stack:  # open under the limiter, held past it
                async with limiter:
                    client = await stack.enter_async_context(target.client(20000 + seed))
                await client.call_tool("lake_move", {"action": "LEFT"})
                opened += 1
                if opened + len(errors) == count:
                    all_open.set()
                await release.wait()
                await client.call_tool("lake_move", {"action": "LEFT"})
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
