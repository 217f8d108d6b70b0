"""`/api/instances`, `/envs/{id}/mcp` handles, `/health` and `/metrics` of a real `mcpsim serve`."""

import json
import time

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from helpers.http import HTTP
from helpers.mcp_client import answer_of
from helpers.procs import running
from helpers.serve import server_script

HEADERS = {"accept": "application/json, text/event-stream"}


def rpc(url: str, method: str, params: dict | None = None, request_id: int = 1) -> dict:
    response = HTTP.post(
        url,
        json={"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}},
        headers=HEADERS,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return answer_of(response)  # SSE: the client accepts both, and a handle streams handshake-era answers


def test_create_use_and_delete_an_instance_through_its_handle(frozen_lake_server):
    created = HTTP.post(
        f"{frozen_lake_server.url}/api/instances", json={"seed": 42, "config": {"map_size": 5}}, timeout=30
    )
    assert created.status_code == 201
    item = created.json()
    assert item["url"] == f"/envs/{item['id']}/mcp" and item["seed"] == 42 and item["state"] == "ready"
    handle = frozen_lake_server.url + item["url"]
    # plain JSON-RPC POSTs, no session, no initialize needed
    tools = rpc(handle, "tools/list")["result"]["tools"]
    assert [tool["name"] for tool in tools] == ["lake_move"]
    first = rpc(handle, "tools/call", {"name": "lake_move", "arguments": {"action": "RIGHT"}}, 7)
    assert first["id"] == 7 and first["result"]["_meta"]["mcpsim"]["step"] == 1
    second = rpc(handle, "tools/call", {"name": "lake_move", "arguments": {"action": "DOWN"}}, 7)
    assert second["result"]["_meta"]["mcpsim"]["step"] == 2  # same instance, state kept
    initial = rpc(handle, "resources/read", {"uri": "game://initial_state"})["result"]["contents"][0]["text"]
    assert len(initial.split("\n")[1:6]) == 5  # config reached the instance
    listed = HTTP.get(f"{frozen_lake_server.url}/api/instances/{item['id']}").json()
    assert listed["pid"] == item["pid"] and listed["last_used_at"] >= item["started_at"]
    deleted = HTTP.delete(f"{frozen_lake_server.url}/api/instances/{item['id']}", timeout=30)
    assert deleted.status_code == 200 and deleted.json()["state"] == "exited"
    assert not running(item["pid"])
    gone = HTTP.post(handle, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=HEADERS)
    assert gone.status_code == 404 and "no instance" in gone.json()["error"]["message"]


async def test_a_handle_works_with_the_official_client_and_concurrent_callers(frozen_lake_server):
    item = HTTP.post(f"{frozen_lake_server.url}/api/instances", json={"seed": 5}, timeout=30).json()
    handle = frozen_lake_server.url + item["url"]

    async def caller(results: list) -> None:
        async with streamable_http_client(handle, terminate_on_close=False) as (read, write):
            from mcp import ClientSession

            async with ClientSession(read, write) as session:
                await session.initialize()
                results.append(await session.list_tools())

    results: list = []
    async with anyio.create_task_group() as tg:
        for _ in range(4):  # ids from the four callers collide (all start at 0/1); the handle keeps them apart
            tg.start_soon(caller, results)
    assert len(results) == 4 and all(r.tools[0].name == "lake_move" for r in results)
    assert HTTP.delete(handle, timeout=30).status_code == 200


def test_api_rejects_bad_input_with_readable_errors(frozen_lake_server):
    url = f"{frozen_lake_server.url}/api/instances"
    for body, needle in [
        ({"seed": "x"}, "invalid seed"),
        ({"seed": -3}, "invalid seed"),
        ({"seed": True}, "invalid seed"),
        ({"config": [1]}, "must be a JSON object"),
        ([1, 2], "must be a JSON object"),
    ]:
        response = HTTP.post(url, json=body, timeout=30)
        assert response.status_code == 400, body
        assert needle in response.json()["error"]["message"]
    response = HTTP.post(url, content=b"{nope", timeout=30)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    assert HTTP.get(f"{url}/0123456789ab").status_code == 404
    assert HTTP.post(f"{frozen_lake_server.url}/envs/../../etc/passwd/mcp", json={}).status_code == 404


def test_health_and_metrics_follow_sessions(frozen_lake_server):
    def health() -> dict:
        return HTTP.get(f"{frozen_lake_server.url}/health").json()

    def metric(name: str) -> float:
        text = HTTP.get(f"{frozen_lake_server.url}/metrics").text
        values = [
            line.split()[-1] for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{")
        ]
        return sum(float(v) for v in values)

    base = health()
    assert base["status"] in ("ok", "degraded") and base["limits"]["max_instances"] == 256
    created_before = metric("mcpsim_sessions_created_total")

    async def scenario():
        async with (
            Client(f"{frozen_lake_server.mcp}?seed=1", mode="legacy") as a,
            Client(f"{frozen_lake_server.mcp}?seed=2", mode="legacy") as b,
        ):
            await a.call_tool("lake_move", {"action": "LEFT"})
            await b.call_tool("lake_move", {"action": "LEFT"})
            during = health()
            assert during["instances"]["live"] == 2 and during["instances"]["ready"] == 2
            assert metric('mcpsim_instances{state="ready"}') == 2
            assert metric("mcpsim_sessions_open") == 2

    anyio.run(scenario)
    deadline = time.monotonic() + 5
    while health()["instances"]["live"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert health()["instances"]["live"] == 0
    assert metric("mcpsim_sessions_created_total") == created_before + 2
    assert metric('mcpsim_request_seconds_count{method="tools/call",tool="lake_move"}') >= 2
    assert metric("mcpsim_spawn_seconds_count") >= 2


async def test_spawning_does_not_stall_other_sessions_and_runs_in_parallel(serve_factory):
    """Parallel means the eight starting servers were alive at once (each sleeps 3 s before serving), counted
    from the process table, not from a wall-clock bound that a loaded machine misses."""
    serve = serve_factory("--server", f"python {server_script('toolbox.py')}")
    order: list[str] = []
    most_alive = 0

    async def slow_starter(seed: int) -> None:
        config = json.dumps({"start_delay": 3})
        async with Client(f"{serve.mcp}?seed={seed}&config={config}", mode="legacy") as client:
            order.append("ready")
            await client.call_tool("echo", {"text": "x"})

    async def count_starting() -> None:
        nonlocal most_alive
        while order.count("ready") < 8:
            alive = await anyio.to_thread.run_sync(serve.instance_processes)
            most_alive = max(most_alive, len(alive) - 1)  # less the busy session's own instance
            await anyio.sleep(0.1)

    async with Client(f"{serve.mcp}?seed=100", mode="legacy") as busy, anyio.create_task_group() as tg:
        for seed in range(8):
            tg.start_soon(slow_starter, seed)
        tg.start_soon(count_starting)
        for _ in range(20):  # while eight instances are starting, this session is served
            await busy.call_tool("echo", {"text": "busy"})
            order.append("call")
    assert order[:20] == ["call"] * 20, order
    assert order.count("ready") == 8
    assert most_alive == 8, f"at most {most_alive} of 8 starting instances were alive at once: not in parallel"
