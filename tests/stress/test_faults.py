"""Faults: clients that vanish, backends that are killed or hang, the server killed mid-load."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import anyio
import psutil
import pytest
from mcp import Client

from helpers.procs import running
from helpers.serve import server_script, start_serve, survivors

pytestmark = pytest.mark.slow

INIT = (
    b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", '
    b'"capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}'
)


def instances(serve) -> list[dict]:
    return serve.get("/api/instances").json()


def wait_until(predicate, timeout: float, message: str) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, message
        time.sleep(0.05)
    return time.monotonic() - started


def test_clients_that_vanish_without_delete_end_by_idle_timeout(serve_factory):
    serve = serve_factory("--env", "frozen_lake", "--fork-server", "--idle-timeout", "2")
    # 1. a client process killed with SIGKILL while its session is open
    script = textwrap.dedent(f"""
        import anyio, sys
        from mcp import Client
        async def main():
            async with Client("{serve.mcp}?seed=1", mode="legacy") as client:
                await client.call_tool("lake_move", {{"action": "LEFT"}})
                print("ready", flush=True)
                await anyio.sleep(3600)
        anyio.run(main)
    """)
    client = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert client.stdout.readline().strip() == b"ready"
    # 2. a raw client that opens a session and resets its TCP connection
    raw = socket.create_connection(("127.0.0.1", int(serve.url.rsplit(":", 1)[1])))
    raw.sendall(
        b"POST /mcp?seed=2 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\nContent-Length: "
        + str(len(INIT)).encode()
        + b"\r\n\r\n"
        + INIT
    )
    assert b"200" in raw.recv(64)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close = RST
    raw.close()
    client.send_signal(signal.SIGKILL)
    client.wait(5)
    assert {i["seed"] for i in instances(serve)} == {1, 2}
    pids = {i["pid"]: psutil.Process(i["pid"]).create_time() for i in instances(serve)}
    took = wait_until(lambda: instances(serve) == [], 10, "sessions of vanished clients were not ended")
    assert 1.5 < took < 10
    assert not survivors(pids)


async def test_backend_killed_with_sigkill_is_a_clear_error_then_removed(serve_factory):
    serve = serve_factory("--server", f"python {server_script('toolbox.py')}", "--fork-server", "--idle-timeout", "3")
    async with Client(f"{serve.mcp}?seed=3", mode="legacy") as client:
        await client.call_tool("echo", {"text": "x"})
        (item,) = instances(serve)
        os.kill(item["pid"], signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(Exception, match="killed by signal 9"):
            await client.call_tool("echo", {"text": "y"})
        assert time.monotonic() - started < 1.0
        assert [i["state"] for i in instances(serve)] == ["exited"]
    # the session's DELETE removed it
    wait_until(lambda: instances(serve) == [], 5, "the dead instance stayed listed")


async def test_hung_backend_times_out_with_a_clear_error_and_is_ended(serve_factory):
    serve = serve_factory("--server", f"python {server_script('toolbox.py')}", "--request-timeout", "1.5")
    async with (
        Client(f"{serve.mcp}?seed=4", mode="legacy") as bystander,
        Client(f"{serve.mcp}?seed=5", mode="legacy") as client,
    ):
        await client.call_tool("echo", {"text": "x"})
        (item,) = [i for i in instances(serve) if i["seed"] == 5]
        os.kill(item["pid"], signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(Exception, match=r"did not answer 'tools/call' \(echo\) within 1.5 s"):
            await client.call_tool("echo", {"text": "y"})
        assert 1.4 < time.monotonic() - started < 5
        await anyio.sleep(0.5)
        assert not running(item["pid"])
        with pytest.raises(Exception, match="presumed hung"):
            await client.call_tool("echo", {"text": "z"})
        # a slow call that reports progress is not hung
        assert "seed=4" in (await bystander.call_tool("echo", {"text": "ok"})).content[0].text


async def test_progress_keeps_a_long_request_alive(serve_factory):
    serve = serve_factory("--server", f"python {server_script('toolbox.py')}", "--request-timeout", "1")
    async with Client(f"{serve.mcp}?seed=6", mode="legacy") as client:

        async def on_progress(value, total, message) -> None:
            return None

        # 4 progress steps, each within the 1 s limit, 4 s in all
        result = await client.call_tool("progress", {"steps": 4, "delay": 0.8}, progress_callback=on_progress)
        assert result.content[0].text == "done"


def test_sigkill_of_serve_mid_load_leaves_no_orphan(tmp_path):
    serve = start_serve(tmp_path, "--env", "frozen_lake", "--fork-server")
    load = textwrap.dedent(f"""
        import anyio
        from mcp import Client
        async def one(seed):
            async with Client("{serve.mcp}?seed=" + str(seed), mode="legacy") as client:
                while True:
                    await client.call_tool("lake_move", {{"action": "LEFT"}})
        async def main():
            async with anyio.create_task_group() as tg:
                for seed in range(24):
                    tg.start_soon(one, seed)
        anyio.run(main)
    """)
    clients = subprocess.Popen([sys.executable, "-c", load], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(serve.instance_processes()) >= 24, 60, "load did not start")
        time.sleep(1)
        serve.descendants()
        serve.stop(signal.SIGKILL)
        assert not survivors(serve.seen_descendants, deadline_s=5)
    finally:
        clients.kill()
        clients.wait()
