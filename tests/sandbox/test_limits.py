"""Resource limits: a fork bomb, a memory hog, a CPU spinner and a huge file writer each end their own instance
with an error naming the limit, while a second session keeps working; nothing is left behind (the leak check of
`serve_factory`). Limits are low so each attack ends in seconds; the CPU limit leaves room for a start on a slow,
loaded machine (a spawned sandboxed instance once used 2 s of CPU before the memory hog ran, and hit that limit)."""

import anyio
import pytest
from mcp import Client

from helpers.serve import server_script

HOSTILE = f"python {server_script('hostile.py')}"
LIMITS = (
    "--limit-memory",
    "512M",
    "--limit-pids",
    "24",
    "--limit-cpu-seconds",
    "5",
    "--limit-file-size",
    "16M",
)
ATTACKS = [
    ("fork_bomb", {}, "exceeded process limit 24"),
    ("memory_hog", {"gigabytes": 4}, "exceeded memory limit 512M"),
    ("cpu_spin", {}, "exceeded CPU time limit 5 s"),
    ("write_big", {"gigabytes": 10}, "exceeded file size limit 16M"),
]


async def attack_while_another_session_works(mcp_url: str, tool: str, args: dict) -> tuple[str, int]:
    """Run the attack in one session while another calls `echo` before, during and after it; returns the
    attack's error and how many echoes succeeded after the attacked instance was gone (each one checked)."""
    done = anyio.Event()
    echoes = 0

    async def bystander() -> None:
        nonlocal echoes
        async with Client(f"{mcp_url}?seed=2", mode="legacy") as client:
            while not done.is_set():
                result = await client.call_tool("echo", {"text": "still here"})
                assert not result.is_error and "still here" in result.content[0].text
                echoes += 1
                await anyio.sleep(0.05)

    async def until(count: int) -> None:
        with anyio.fail_after(60):
            while echoes < count:
                await anyio.sleep(0.02)

    error = ""
    async with anyio.create_task_group() as tg:
        tg.start_soon(bystander)
        await until(1)
        async with Client(f"{mcp_url}?seed=1", mode="legacy") as client:
            with anyio.fail_after(60):
                try:
                    result = await client.call_tool(tool, args)
                    error = f"no error: {result.content[0].text}"
                except Exception as exc:
                    error = str(exc)
        after = echoes
        await until(after + 2)
        done.set()
    return error, echoes - after


@pytest.mark.parametrize("fork_server", [False, True], ids=["spawn", "fork-server"])
async def test_each_attack_ends_only_its_instance_with_the_limit_named(serve_factory, fork_server):
    flags = ("--fork-server",) if fork_server else ("--no-fork-server",)
    serve = serve_factory("--server", HOSTILE, "--sandbox", "strict", *LIMITS, *flags)
    for tool, args, expected in ATTACKS:
        error, echoes = await attack_while_another_session_works(serve.mcp, tool, args)
        assert expected in error, (tool, error)
        assert echoes >= 2
    health = serve.get("/health").json()
    assert health["limits"]["sandbox"]["pids"] == 24
    assert health["limits"]["sandbox"]["memory"] == "512M"
    if fork_server:
        assert "fork server ready" in serve.log() and "spawning instead" not in serve.log()
