"""Stopping `mcpsim serve` - politely or with SIGKILL - leaves no process of any instance behind."""

import contextlib
import signal
import time

import anyio
import psutil
import pytest
from mcp import Client

from helpers.serve import server_script, start_serve, survivors


def pgid_members(pgids: set[int]) -> list[int]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and psutil.os.getpgid(proc.pid) in pgids:
                members.append(proc.pid)
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass
    return members


async def open_sessions_with_grandchildren(serve, count: int) -> tuple[list[int], list]:
    """Open sessions (left open) whose servers each started a grandchild that ignores SIGTERM."""
    grandchildren, clients = [], []
    for seed in range(count):
        client = Client(f"{serve.mcp}?seed={seed}", mode="legacy")
        await client.__aenter__()
        clients.append(client)
        result = await client.call_tool("spawn_grandchild", {})
        grandchildren.append(result.structured_content["result"])
    return grandchildren, clients


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_stopping_serve_leaves_no_process_behind(tmp_path, sig):
    serve = start_serve(tmp_path, "--server", f"python {server_script('toolbox.py')}")
    holder: dict = {}

    async def scenario():
        grandchildren, clients = await open_sessions_with_grandchildren(serve, 3)
        holder["grandchildren"] = grandchildren
        descendants = serve.descendants()
        holder["pgids"] = {psutil.os.getpgid(p.pid) for p in descendants}
        assert len(serve.instance_processes()) >= 6  # 3 servers + 3 grandchildren
        serve.stop(sig)
        for client in clients:  # the server is gone; the clients just need closing
            with anyio.move_on_after(2), contextlib.suppress(Exception):  # the peer vanished: errors expected
                await client.__aexit__(None, None, None)

    anyio.run(scenario)
    assert serve.process.returncode is not None
    left = survivors(serve.seen_descendants, deadline_s=5)
    assert not left, f"survivors after {sig!r}: {left}"
    for pid in holder["grandchildren"]:
        assert pid not in [p.pid for p in psutil.process_iter()] or psutil.Process(pid).status() == "zombie"
    deadline = time.monotonic() + 5
    while pgid_members(holder["pgids"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pgid_members(holder["pgids"]) == []
