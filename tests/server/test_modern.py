"""MCP 2026-07-28 (stateless) through a real `mcpsim serve`: episodes addressed by the handles mcpsim returns.

The clients are the official SDK's `Client` in `mode="2026-07-28"` and `"auto"` (and `"legacy"` for the same
trajectory in the handshake era); the raw-HTTP tests pin the wire: status codes, error codes, `_meta` keys.
"""

import json
import re
import time

import anyio
import httpx
import pytest
from mcp import Client

from helpers.http import HTTP
from helpers.rollouts import solve
from helpers.serve import start_serve, survivors

ENVELOPE = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


def post(url: str, method: str, params: dict | None = None, *, name: str | None = None, version: str = "2026-07-28"):
    headers = {"MCP-Protocol-Version": version, "Mcp-Method": method, "accept": "application/json"}
    if name is not None:
        headers["Mcp-Name"] = name
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**(params or {})}}
    body["params"]["_meta"] = {**ENVELOPE, **body["params"].get("_meta", {})}
    return HTTP.post(url, json=body, headers=headers, timeout=30)


def move_call(url: str, action: str, handle: str | None = None) -> httpx.Response:
    meta = {"mcpsim/handle": handle} if handle else {}
    params = {"name": "lake_move", "arguments": {"action": action}, "_meta": meta}
    return post(url, "tools/call", params, name="lake_move")


async def play(url: str, seed: int, mode: str) -> list[tuple[str, dict]]:
    """A whole FrozenLake episode with the plain SDK client, following only the handle mcpsim returns."""
    trace = []
    async with Client(f"{url}/mcp?seed={seed}", mode=mode) as client:
        first = await client.read_resource("game://initial_state")
        text = first.contents[0].text
        handle = (first.meta or {}).get("mcpsim/handle")
        if mode == "legacy":
            assert handle is None, "handshake-era results are not stamped"
        else:
            assert re.fullmatch(r"[0-9a-f]{32}", handle)
            assert first.meta["mcpsim/url"] == f"{url}/envs/{handle}/mcp"
        trace.append((text, {}))
        for _ in range(30):
            action = solve(text) or "LEFT"
            result = await client.call_tool(
                "lake_move", {"action": action}, meta={"mcpsim/handle": handle} if handle else None
            )
            meta = dict(result.meta or {})
            if handle:
                assert meta.pop("mcpsim/handle") == handle
                assert meta.pop("mcpsim/url").endswith(f"/envs/{handle}/mcp")
            text = result.content[0].text
            trace.append((text, meta.get("mcpsim", {})))
            if meta.get("mcpsim", {}).get("terminated") or meta.get("mcpsim", {}).get("truncated"):
                break
    return trace


async def test_a_2026_client_plays_a_seeded_episode_like_a_handshake_client(frozen_lake_server):
    url = frozen_lake_server.url
    modern = await play(url, 5, "2026-07-28")
    auto = await play(url, 5, "auto")
    legacy = await play(url, 5, "legacy")
    assert modern[-1][1]["terminated"], "the scripted solver reaches the goal (or a hole) before 30 moves"
    assert modern == auto == legacy


async def test_same_seed_episodes_stay_independent(frozen_lake_server):
    url = frozen_lake_server.mcp + "?seed=13"
    first = move_call(url, "RIGHT")
    second = move_call(url, "DOWN")
    assert first.status_code == second.status_code == 200
    a, b = (r.json()["result"]["_meta"]["mcpsim/handle"] for r in (first, second))
    assert a != b, "each handle-less tools/call is a fresh episode"
    again = move_call(frozen_lake_server.mcp, "RIGHT", handle=a).json()["result"]
    assert again["_meta"]["mcpsim"]["step"] == 2
    other = move_call(frozen_lake_server.mcp, "RIGHT", handle=b).json()["result"]
    assert other["_meta"]["mcpsim"]["step"] == 2
    assert "row 0, column 2" in again["content"][0]["text"]
    assert "row 1, column 1" in other["content"][0]["text"]
    # the same handle works as a URL too, and DELETE ends it; afterwards it says "ended"
    on_url = move_call(f"{frozen_lake_server.url}/envs/{a}/mcp", "DOWN").json()["result"]
    assert on_url["_meta"]["mcpsim"]["step"] == 3 and on_url["resultType"] == "complete"
    for handle in (a, b):
        assert HTTP.delete(f"{frozen_lake_server.url}/envs/{handle}/mcp", timeout=30).status_code == 200
    ended = move_call(frozen_lake_server.mcp, "UP", handle=a)
    assert ended.status_code == 404 and ended.json()["error"]["code"] == -31011


def test_the_2026_wire_of_the_fronts(frozen_lake_server):
    mcp = frozen_lake_server.mcp
    before = {item["id"] for item in frozen_lake_server.get("/api/instances").json()}
    discover = post(mcp, "server/discover")
    assert discover.status_code == 200
    result = discover.json()["result"]
    assert result["supportedVersions"] == ["2026-07-28"] and result["resultType"] == "complete"
    assert "tools" in result["capabilities"] and result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"]
    tools = post(mcp, "tools/list").json()["result"]
    assert [tool["name"] for tool in tools["tools"]] == ["lake_move"]
    assert tools["ttlMs"] == 0 and tools["cacheScope"] == "private" and "mcpsim/handle" not in tools["_meta"]
    time.sleep(0.5)  # the probe instance ends right after answering
    after = {item["id"] for item in frozen_lake_server.get("/api/instances").json() if item["state"] == "ready"}
    assert not (after - before), "a handle-less discover or list starts no episode"

    unsupported = post(mcp, "tools/list", version="2099-01-01")
    assert unsupported.status_code == 400
    assert unsupported.json()["error"]["code"] == -32020  # the header and the envelope disagree: said first
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": {**ENVELOPE}}}
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
    headers = {"MCP-Protocol-Version": "2099-01-01", "Mcp-Method": "tools/list"}
    error = HTTP.post(mcp, json=body, headers=headers, timeout=30).json()["error"]
    assert error["code"] == -32022 and error["data"] == {"supported": ["2026-07-28"], "requested": "2099-01-01"}
    removed = post(mcp, "initialize")
    assert removed.status_code == 404 and removed.json()["error"]["code"] == -32601
    mismatch = HTTP.post(mcp, json={**body, "method": "tools/call"}, headers=headers, timeout=30)
    assert mismatch.status_code == 400 and mismatch.json()["error"]["code"] == -32020
    no_header = HTTP.post(mcp, json={**body, "params": {"_meta": ENVELOPE}}, timeout=30)
    assert no_header.status_code == 400 and no_header.json()["error"]["code"] == -32020
    unknown = move_call(mcp, "UP", handle="0" * 32)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == -31010
    listen = post(mcp, "subscriptions/listen", {"notifications": {"toolsListChanged": True}})
    assert listen.status_code == 400, "a listen is a stream: without text/event-stream in Accept it is refused"
    headers = {
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "subscriptions/listen",
        "accept": "text/event-stream",
    }
    body = {"jsonrpc": "2.0", "id": "l1", "method": "subscriptions/listen", "params": {"_meta": ENVELOPE}}
    body["params"]["notifications"] = {"toolsListChanged": True}
    with HTTP.stream("POST", mcp, json=body, headers=headers, timeout=30) as stream:
        first = next(line for line in stream.iter_lines() if line.startswith("data:"))
    ack = json.loads(first[5:])
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"]["notifications"] == {"toolsListChanged": True}  # the config's list changes (FrozenLake's)
    assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "l1"
    assert frozen_lake_server.get("/health").status_code == 200


def test_a_flood_of_handle_less_requests_is_bounded_and_reclaimed(tmp_path):
    serve = start_serve(tmp_path, "--env", "frozen_lake", "--max-instances", "3", "--orphan-timeout", "2")
    try:
        url = serve.mcp + "?seed=1"
        statuses: list[int] = []

        async def flood() -> None:
            async with httpx.AsyncClient(timeout=60) as http, anyio.create_task_group() as tg:

                async def one() -> None:
                    meta = {"name": "lake_move", "arguments": {"action": "UP"}, "_meta": ENVELOPE}
                    headers = {
                        "MCP-Protocol-Version": "2026-07-28",
                        "Mcp-Method": "tools/call",
                        "Mcp-Name": "lake_move",
                    }
                    reply = await http.post(
                        url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": meta}, headers=headers
                    )
                    statuses.append(reply.status_code)
                    if reply.status_code == 503:
                        assert reply.json()["error"]["code"] == -31014

                for _ in range(12):
                    tg.start_soon(one)

        anyio.run(flood)
        assert set(statuses) <= {200, 503} and statuses.count(200) >= 3 and 503 in statuses
        assert len([p for p in serve.instance_processes()]) <= 3
        deadline = time.monotonic() + 20
        while serve.get("/api/instances").json() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert serve.get("/api/instances").json() == [], "orphans end after --orphan-timeout"
        assert serve.get("/health").status_code == 200
    finally:
        serve.stop()
    assert not survivors(serve.seen_descendants)


@pytest.mark.parametrize("front", ["mcp", "envs"])
def test_a_handle_is_bound_to_its_token(tmp_path, front):
    tokens = tmp_path / "tokens"
    tokens.write_text("admin:admin-token-0123456789\nalice:alice-token-0123456789\nbob:bob-token-0123456789\n")
    tokens.chmod(0o600)
    serve = start_serve(tmp_path, "--env", "frozen_lake", "--auth-token-file", str(tokens))
    try:
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "lake_move", "arguments": {"action": "RIGHT"}, "_meta": ENVELOPE},
        }
        headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "lake_move"}
        alice = {**headers, "authorization": "Bearer alice-token-0123456789"}
        bob = {**headers, "authorization": "Bearer bob-token-0123456789"}
        first = HTTP.post(serve.mcp + "?seed=13", json=body, headers=alice, timeout=30)
        assert first.status_code == 200
        handle = first.json()["result"]["_meta"]["mcpsim/handle"]
        target = serve.mcp if front == "mcp" else f"{serve.url}/envs/{handle}/mcp"
        body["params"]["_meta"] = {**ENVELOPE, "mcpsim/handle": handle}
        stolen = HTTP.post(target, json=body, headers=bob, timeout=30)
        assert stolen.status_code == 404 and stolen.json()["error"]["code"] == -31010  # as if it did not exist
        own = HTTP.post(target, json=body, headers=alice, timeout=30).json()["result"]
        assert own["_meta"]["mcpsim"]["step"] == 2
    finally:
        serve.stop()
    assert not survivors(serve.seen_descendants)


@pytest.mark.parametrize("mode", ["2026-07-28", "auto", "legacy"])
async def test_serve_stdio_speaks_the_revision_of_its_clients_first_message(mode):
    import sys

    from mcp import StdioServerParameters

    argv = ["-m", "mcpsim", "serve", "--stdio", "--env", "frozen_lake", "--seed", "13", "--log-level", "warning"]
    import os

    params = StdioServerParameters(command=sys.executable, args=argv, env=dict(os.environ))  # this checkout's mcpsim
    async with Client(params, mode=mode) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        first = await client.read_resource("game://initial_state")
        assert "@FFF" in first.contents[0].text
        moved = await client.call_tool("lake_move", {"action": "RIGHT"})
        moved = await client.call_tool("lake_move", {"action": "RIGHT"})
        assert moved.meta["mcpsim"]["step"] == 2 and "row 0, column 2" in moved.content[0].text
