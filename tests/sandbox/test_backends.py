"""HTTP and SSE backends under `--sandbox`: the server listens on its own loopback (in its own network
namespace) and mcpsim reaches it through a Unix socket it owns and the relay inside (`sandbox/relay.py`)."""

import shutil
from pathlib import Path

import anyio
import pytest
from mcp import Client

from helpers.serve import server_script
from sandbox.test_hostile import port_of, text
from sandbox.test_same_trajectories import JS_SERVER, LAKE, trajectories

CASES = {
    "python-http-strict": (("--env", "frozen_lake", "--backend-transport", "http"), "strict"),
    "python-sse-standard": (("--env", "frozen_lake", "--backend-transport", "sse"), "standard"),
    "js-http-strict": (("--server", f"node {JS_SERVER / 'server.js'} --seed {{seed}} --port {{port}}"), "strict"),
}


def relay_sockets(serve) -> list[Path]:
    """The relay sockets of that `mcpsim serve` (in its sandbox's directory, one per live instance)."""
    return list(Path("/tmp").glob(f"mcpsim-sandbox-{serve.process.pid}-*/*.sock"))


@pytest.mark.parametrize("case", list(CASES))
async def test_http_and_sse_backends_give_the_same_trajectories_sandboxed(serve_factory, case):
    flags, level = CASES[case]
    if case.startswith("js") and (shutil.which("node") is None or not (JS_SERVER / "node_modules").exists()):
        pytest.skip("node or the example's node_modules (make node-deps) is missing")
    tool, actions = LAKE
    seeds = range(2)
    plain = serve_factory(*flags)
    expected = await trajectories(plain.mcp, tool, actions, seeds)
    plain.stop()
    boxed = serve_factory(*flags, "--sandbox", level)
    got = await trajectories(boxed.mcp, tool, actions, seeds)
    assert got == expected
    assert f"sandbox {level}" in boxed.log()
    with anyio.fail_after(10):  # the sessions ended: their instances, and with them their sockets, go
        while relay_sockets(boxed) or boxed.instance_processes():
            await anyio.sleep(0.1)


@pytest.mark.parametrize(("transport", "level"), [("http", "strict"), ("sse", "standard")])
async def test_forked_sandboxed_http_and_sse_backends_match_spawned_ones(serve_factory, transport, level):
    """The fork server with a sandboxed HTTP/SSE backend: each child isolates itself (`sandbox/isolate.py`)
    and gets its relay; the trajectories are those of spawned sandboxed instances, nothing is spawned instead,
    and every relay socket and process is gone after."""
    tool, actions = LAKE
    seeds = range(3)
    flags = ("--env", "frozen_lake", "--backend-transport", transport, "--sandbox", level)
    spawned = serve_factory(*flags)
    expected = await trajectories(spawned.mcp, tool, actions, seeds)
    spawned.stop()
    forked = serve_factory(*flags, "--fork-server")
    got = await trajectories(forked.mcp, tool, actions, seeds)
    assert got == expected
    fork = forked.get("/health").json()["fork_server"]
    assert fork["state"] == "active" and fork["spawned_instead"] == 0, fork
    with anyio.fail_after(10):
        while relay_sockets(forked) or forked.instance_processes():
            await anyio.sleep(0.1)


@pytest.mark.parametrize("fork", ["spawned", "forked"])
@pytest.mark.parametrize(("transport", "level"), [("http", "standard"), ("http", "strict"), ("sse", "strict")])
async def test_a_sandboxed_http_backend_reaches_nothing_but_what_its_level_allows(
    serve_factory, transport, level, fork
):
    command = f"python {server_script('hostile.py')} --transport {transport} --port {{port}}"
    extra = ("--fork-server",) if fork == "forked" else ("--no-fork-server",)
    serve = serve_factory("--server", command, "--backend-transport", transport, "--sandbox", level, *extra)
    async with Client(f"{serve.mcp}?seed=1", mode="legacy") as client:
        own_port = await client.call_tool("connect", {"host": "127.0.0.1", "port": port_of(serve.url)})
        outside = await client.call_tool("connect", {"host": "1.1.1.1", "port": 80})
        loopback = await client.call_tool("listen_loopback", {})
        fast_open = await client.call_tool("fast_open", {"host": "127.0.0.1", "port": port_of(serve.url)})
        files = await client.call_tool("listdir", {"path": "/tmp"})
        processes = await client.call_tool("processes", {})
        assert len(relay_sockets(serve)) == 1
    state = serve.get("/health").json()["fork_server"]
    assert state["state"] == ("active" if fork == "forked" else "off"), state
    assert state["spawned_instead"] == 0, state
    assert text(processes).count("', '") + 1 <= 3, text(processes)  # own pid namespace: init, server, relay
    assert "mcpsim serve" not in text(processes) and "watchdog" not in text(processes), text(processes)
    assert text(own_port).startswith("refused"), text(own_port)  # mcpsim's port: another network namespace
    assert text(outside).startswith("refused"), text(outside)
    assert ".sock" not in text(files)  # the relay's socket is outside the sandbox, passed in as a descriptor
    if level == "standard":
        assert text(loopback).startswith("ok: listened on"), text(loopback)
    else:  # strict: it may listen (the relay connects to it) but connect nowhere, its own loopback included
        assert text(loopback).startswith("refused") and "101" in text(loopback), text(loopback)
        assert "101" in text(own_port) and "101" in text(outside)  # ENETUNREACH, from the seccomp filter
        assert text(fast_open).startswith("refused") and "101" in text(fast_open), text(fast_open)
