"""Hostile servers (tests/servers/hostile.py) against `--sandbox standard|strict`: network, files, processes."""

import ast
import os
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client

from helpers.serve import ARTIFACTS, server_script

HOSTILE = f"python {server_script('hostile.py')}"


def text(result) -> str:
    return result.content[0].text


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.mark.parametrize("level", ["standard", "strict"])
async def test_network_is_refused_except_own_loopback_in_standard(serve_factory, level):
    serve = serve_factory("--server", HOSTILE, "--sandbox", level)
    async with Client(f"{serve.mcp}?seed=1", mode="legacy") as client:
        own_port = await client.call_tool("connect", {"host": "127.0.0.1", "port": port_of(serve.url)})
        outside = await client.call_tool("connect", {"host": "1.1.1.1", "port": 80})
        loopback = await client.call_tool("listen_loopback", {})
    assert text(own_port).startswith("refused"), text(own_port)  # mcpsim's port is in another namespace
    assert text(outside).startswith("refused"), text(outside)
    if level == "standard":
        assert text(loopback).startswith("ok: listened on"), text(loopback)
        assert "Connection refused" in text(own_port) or "111" in text(own_port)
    else:
        assert text(loopback).startswith("refused") and "97" in text(loopback)  # EAFNOSUPPORT: no socket at all


async def test_a_server_dying_for_want_of_network_gets_an_error_naming_it(serve_factory):
    serve = serve_factory("--server", HOSTILE, "--sandbox", "strict")
    async with Client(f"{serve.mcp}?seed=1", mode="legacy") as client:
        with pytest.raises(Exception, match="network is disabled for this instance"):
            await client.call_tool("connect_or_die", {"host": "1.1.1.1", "port": 443})


async def test_files_outside_the_work_dir_and_other_instances_are_out_of_reach(serve_factory, tmp_path):
    planted = tmp_path / "secret.txt"  # under /tmp: hidden by the sandbox's own /tmp
    planted.write_text("the user's secret")
    ARTIFACTS.mkdir(exist_ok=True)
    visible = ARTIFACTS / f"sandbox-secret-{os.getpid()}.txt"  # on the read-only root, but root's and 0600
    visible.write_text("root's secret")
    visible.chmod(0o600)
    outside = ARTIFACTS / f"sandbox-written-{os.getpid()}.txt"
    serve = serve_factory("--server", HOSTILE, "--sandbox", "strict")
    try:
        async with (
            Client(f"{serve.mcp}?seed=1", mode="legacy") as mine,
            Client(f"{serve.mcp}?seed=2", mode="legacy") as other,
        ):
            other_file = text(await other.call_tool("work_dir", {}))
            assert other_file.startswith("ok: "), other_file
            other_dir = str(Path(other_file[4:]).parent)
            own = text(await mine.call_tool("work_dir", {}))
            assert own.startswith("ok: ") and Path(own[4:]).read_text() == "mine"  # works, seen from outside too
            own_dir = Path(own[4:]).parent
            for tool, args in (
                ("read", {"path": str(planted)}),
                ("read", {"path": str(visible)}),
                ("read", {"path": other_file[4:]}),
                ("listdir", {"path": other_dir}),
                ("write", {"path": str(outside)}),
                ("write", {"path": str(tmp_path / "dropped.txt")}),
                ("write", {"path": "/etc/mcpsim-was-here"}),
            ):
                outcome = text(await mine.call_tool(tool, args))
                assert outcome.startswith("refused"), (tool, args, outcome)
            seen = ast.literal_eval(text(await mine.call_tool("processes", {}))[4:])
            # its own sandbox's init (bwrap) and its own server: not mcpsim, not the other instance
            assert len(seen) <= 2 and not any(other_dir in line for line in seen), seen
            assert not any(word in line for line in seen for word in ("-m mcpsim", "watchdog", "pytest")), seen
        assert not outside.exists() and not (tmp_path / "dropped.txt").exists()
        deadline = time.monotonic() + 10
        while own_dir.exists() and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        assert not own_dir.exists(), "the work dir must be gone when the instance ends"
    finally:
        visible.unlink()
