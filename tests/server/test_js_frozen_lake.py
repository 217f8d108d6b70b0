"""The JavaScript FrozenLake (`examples/js_frozen_lake`, official TypeScript SDK): alone, and served by mcpsim
over stdio (the directory detected as a Node project) and over HTTP (a `--port {port}` template)."""

import re
import time
from collections import deque

import pytest
from mcp import Client, StdioServerParameters

from helpers.http import HTTP
from helpers.mcp_client import initial_map, lake, move
from helpers.serve import REPO, port_range, ports

PROJECT = REPO / "examples" / "js_frozen_lake"
SERVER_JS = PROJECT / "server.js"


@pytest.fixture(scope="module", autouse=True)
def node_modules():
    if not (PROJECT / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir():
        pytest.fail(f"{PROJECT}/node_modules is missing: run `make node-deps` (make test does)")


def js_client(seed: int, config: str | None = None) -> Client:
    env = {"MCPSIM_CONFIG": config} if config else None
    return Client(StdioServerParameters(command="node", args=[str(SERVER_JS), "--seed", str(seed)], env=env),
                  mode="legacy")  # fmt: skip


def grid(text: str) -> list[str]:
    return [line for line in text.split("\n")[1:] if re.fullmatch(r"[SFHG@]+", line)]


def safe_path(rows: list[str]) -> list[str]:
    """Shortest safe walk from the start to G on a map as the server shows it."""
    size = len(rows)
    goal = next((r, c) for r in range(size) for c in range(size) if rows[r][c] == "G")
    moves = {"LEFT": (0, -1), "DOWN": (1, 0), "RIGHT": (0, 1), "UP": (-1, 0)}
    parents: dict = {(0, 0): None}
    queue = deque([(0, 0)])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            path = []
            while parents[cell] is not None:
                cell, action = parents[cell]
                path.append(action)
            return path[::-1]
        for action, (dr, dc) in moves.items():
            nxt = (cell[0] + dr, cell[1] + dc)
            if 0 <= nxt[0] < size and 0 <= nxt[1] < size and nxt not in parents and rows[nxt[0]][nxt[1]] != "H":
                parents[nxt] = (cell, action)
                queue.append(nxt)
    raise AssertionError("the server drew a map without a safe path")


async def test_standalone_same_tool_meta_and_errors_as_the_python_server():
    async with js_client(9) as client:
        (tool,) = (await client.list_tools()).tools
        assert tool.name == "lake_move"
        assert tool.input_schema["properties"]["action"]["enum"] == ["LEFT", "DOWN", "RIGHT", "UP"]
        bad = await client.call_tool("lake_move", {"action": "JUMP"})
        assert bad.is_error and bad.content[0].text == "Invalid action 'JUMP'. Valid actions: LEFT, DOWN, RIGHT, UP."
        first = (await client.read_resource("game://initial_state")).contents[0].text
        path = safe_path(grid(first))
        for action in path[:-1]:
            result = await client.call_tool("lake_move", {"action": action.lower()})
            assert not result.is_error and result.meta["mcpsim"]["terminated"] is False
        result = await client.call_tool("lake_move", {"action": path[-1]})
        assert result.meta == {"mcpsim": {"reward": 1, "terminated": True, "truncated": False, "step": len(path)}}
        assert "(goal)" in result.content[0].text and "reward" not in result.content[0].text.lower()
        after = await client.call_tool("lake_move", {"action": "LEFT"})
        assert after.is_error and f"terminated at step {len(path)}" in after.content[0].text


async def test_standalone_seed_determinism_config_and_truncation():
    async def run(seed: int, config: str | None = None) -> list:
        async with js_client(seed, config) as client:
            trace = [(await client.read_resource("game://initial_state")).contents[0].text]
            for action in ["RIGHT", "DOWN", "RIGHT", "DOWN", "LEFT", "UP"]:
                result = await client.call_tool("lake_move", {"action": action})
                trace.append((result.content[0].text, result.meta, result.is_error))
        return trace

    assert await run(21) == await run(21)
    maps = {tuple(grid((await run(seed))[0])) for seed in range(6)}
    assert len(maps) >= 4
    big = await run(3, '{"map_size": 8, "max_steps": 2}')
    assert len(grid(big[0])) == 8
    assert big[2][1]["mcpsim"]["truncated"] is True and big[3][2] is True


async def play_through_mcpsim(url: str) -> None:
    """Two sessions with one seed (same map, own state) and one with another seed, through `/mcp`."""
    async with lake(url, 5) as a, lake(url, 5) as b, lake(url, 6) as c:
        map_a, map_b, map_c = await initial_map(a), await initial_map(b), await initial_map(c)
        assert map_a == map_b and grid(map_a)
        text_a, meta_a, error_a = await move(a, "RIGHT")
        text_b, meta_b, error_b = await move(b, "DOWN")
        assert not error_a and not error_b
        assert set(meta_a) == {"reward", "terminated", "truncated", "step"} and meta_a["step"] == 1
        assert meta_b["step"] == 1, "b's first move must be its own step 1"
        assert "row 0, column 1" in text_a and "row 1, column 0" in text_b
        bad, _, is_error = await move(c, "NOWHERE")
        assert is_error and "Valid actions: LEFT, DOWN, RIGHT, UP" in bad
    async with lake(url, 5) as again:
        assert await initial_map(again) == map_a
        assert grid(map_c)


async def test_served_over_stdio_as_a_detected_node_project(serve_factory):
    serve = serve_factory("--server", str(PROJECT))
    await play_through_mcpsim(serve.url)
    assert all(item["transport"] == "stdio" for item in serve.get("/api/instances").json())


async def test_served_over_http_with_a_port_template(serve_factory):
    template = f"node {SERVER_JS} --port {{port}} --seed {{seed}}"
    serve = serve_factory("--server", template, "--port-range", port_range(600, 20))
    async with lake(serve.url, 5) as client:
        await move(client, "DOWN")
        (item,) = serve.get("/api/instances").json()
        assert item["transport"] == "http"
        low, high = ports(600, 20)
        assert low <= item["port"] <= high
    await play_through_mcpsim(serve.url)


@pytest.mark.parametrize("backend", ["stdio", "http"])
async def test_a_2026_client_plays_the_handshake_only_server_through_translation(serve_factory, backend):
    """The TypeScript SDK 1.x server speaks only the handshake era: mcpsim initializes it and translates."""
    if backend == "stdio":
        serve = serve_factory("--server", str(PROJECT))
    else:
        template = f"node {SERVER_JS} --port {{port}} --seed {{seed}}"
        serve = serve_factory("--server", template, "--port-range", port_range(640, 10))
    envelope = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    discover = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": envelope}}
    headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"}
    found = HTTP.post(serve.mcp, json=discover, headers=headers, timeout=60).json()["result"]  # the server has none
    assert found["supportedVersions"] == ["2026-07-28"] and "tools" in found["capabilities"]
    announced = HTTP.post(f"{serve.url}/api/instances", json={"seeds": [5], "protocol": "2026-07-28"}, timeout=30)
    assert announced.status_code == 202
    warmed = None
    for _ in range(600):  # a warm instance opened for 2026: discover refused, initialized, translated
        warmed = next((i for i in serve.get("/api/instances").json() if i["warm"] and i["state"] == "ready"), None)
        if warmed is not None:
            break
        time.sleep(0.05)
    assert warmed is not None and warmed["seed"] == 5
    async with Client(f"{serve.mcp}?seed=5", mode="2026-07-28") as client:
        first = await client.read_resource("game://initial_state")
        handle = first.meta["mcpsim/handle"]
        assert handle == warmed["id"], "the 2026 episode took the instance warmed for its era"
        path = safe_path(grid(first.contents[0].text))
        for step, action in enumerate(path, 1):
            result = await client.call_tool("lake_move", {"action": action}, meta={"mcpsim/handle": handle})
            assert result.meta["mcpsim"]["step"] == step and result.meta["mcpsim/handle"] == handle
        assert result.meta["mcpsim"]["terminated"] and result.meta["mcpsim"]["reward"] == 1.0
        assert result.meta["io.modelcontextprotocol/serverInfo"]["name"]  # the backend's, from its initialize
    (item,) = [i for i in serve.get("/api/instances").json() if i["id"] == handle]
    assert item["protocol"] == "2025-11-25", "the instance itself speaks the handshake era"
