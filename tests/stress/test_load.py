"""Load: many concurrent sessions stepping at once, then thousands of sessions of churn; nothing may leak."""

import anyio
import pytest
from mcp import Client

from helpers.serve import ports
from stress.leaks import settle
from stress.profile import PROFILE

pytestmark = pytest.mark.slow


async def episode(url: str, seed: int, steps: int) -> int:
    async with Client(f"{url}/mcp?seed={seed}&config=%7B%22max_steps%22%3A%201000%7D", mode="legacy") as client:
        done = 0
        for _ in range(steps):
            result = await client.call_tool("lake_move", {"action": "LEFT"})  # bumping the wall: never ends
            assert not result.is_error and result.meta["mcpsim"]["step"] == done + 1
            done += 1
        return done


async def churn(url: str, sessions: int, concurrency: int, first_seed: int = 100_000) -> int:
    limiter = anyio.Semaphore(concurrency)
    done = 0

    async def one(seed: int) -> None:
        nonlocal done
        async with limiter, Client(f"{url}/mcp?seed={seed}", mode="legacy") as client:
            await client.call_tool("lake_move", {"action": "LEFT"})
            await client.call_tool("lake_move", {"action": "DOWN"})
            done += 1

    async with anyio.create_task_group() as tg:
        for seed in range(first_seed, first_seed + sessions):
            tg.start_soon(one, seed)
    return done


@pytest.mark.parametrize("backend", ["stdio", "http"])
async def test_load_and_churn_leave_nothing_behind(serve_factory, backend):
    # HTTP instances hold a port each: room for every session plus instances of a pass still stopping
    low, high = ports(1400, 200) if backend == "stdio" else ports(1600, PROFILE.concurrent_sessions + 100)
    args = [
        "--env",
        "frozen_lake",
        "--fork-server",
        "--max-instances",
        "512",
        "--port-range",
        f"{low}-{high}",
        "--backend-transport",
        backend,
    ]
    serve = serve_factory(*args)
    pid = serve.process.pid
    concurrent = PROFILE.concurrent_sessions

    async def load_pass(first_seed: int) -> list[int]:
        results: list[int] = []

        async def run(seed: int) -> None:
            results.append(await episode(serve.url, seed, PROFILE.steps_per_session))

        async with anyio.create_task_group() as tg:
            for seed in range(first_seed, first_seed + concurrent):
                tg.start_soon(run, seed)
        return results

    # Warm-up at full concurrency: lazily loaded code and the allocator's high-water mark are not leaks.
    assert await load_pass(0) == [PROFILE.steps_per_session] * concurrent
    before = settle(pid, (low, high))
    assert await load_pass(10_000) == [PROFILE.steps_per_session] * concurrent
    assert await churn(serve.url, PROFILE.churn_sessions, PROFILE.churn_concurrency) == PROFILE.churn_sessions
    after = settle(pid, (low, high))
    assert after.instances == 0, "instance processes left after the load"
    assert after.helpers == before.helpers == 2  # the watchdog and the fork template only
    assert after.listening_in_range == 0
    health = serve.get("/health").json()
    assert health["ports"]["in_use"] == 0 and health["instances"]["live"] == 0
    assert after.fds <= before.fds + 5, f"file descriptors grew from {before.fds} to {after.fds}"
    assert after.rss_mb <= before.rss_mb * 1.10, f"RSS grew from {before.rss_mb:.1f} to {after.rss_mb:.1f} MB"
    print(
        f"\n{backend}: {concurrent} sessions x {PROFILE.steps_per_session} steps + {PROFILE.churn_sessions} churn; "
        f"fds {before.fds}->{after.fds}, RSS {before.rss_mb:.1f}->{after.rss_mb:.1f} MB"
    )
