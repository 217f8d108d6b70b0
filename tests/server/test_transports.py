"""Every front transport reaches every backend transport with the same behaviour (the 3x3 matrix, in `make stress`;
a covering subset in `make test`)."""

import json
import subprocess
import sys
import time

import anyio
import httpx
import pytest
from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.sse import sse_client

from helpers.http import HTTP
from helpers.serve import port_range, start_serve, survivors

BACKENDS = ["stdio", "http", "sse"]
ACTIONS = ["RIGHT", "DOWN", "DOWN", "RIGHT", "LEFT", "DOWN", "RIGHT", "UP"]
SEED = 21


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    started = {}
    try:  # a serve that fails to start must not leave the ones started before it running
        for index, backend in enumerate(BACKENDS):
            started[backend] = start_serve(
                tmp_path_factory.mktemp(backend),
                "--env",
                "frozen_lake",
                "--backend-transport",
                backend,
                "--port-range",
                port_range(1100 + 50 * index, 50),
            )
        yield started
    finally:
        for serve in started.values():
            serve.stop()
    for serve in started.values():
        assert not survivors(serve.seen_descendants)


async def play(session) -> list:
    trace = [(await session.read_resource("game://initial_state")).contents[0].text]
    for action in ACTIONS:
        result = await session.call_tool("lake_move", {"action": action})
        trace.append((result.content[0].text, result.meta, result.is_error))
    return trace


async def via_streamable_http(serve, backend) -> list:
    async with Client(f"{serve.mcp}?seed={SEED}", mode="legacy") as client:
        return await play(client)


async def via_sse(serve, backend) -> list:
    async with sse_client(f"{serve.url}/sse?seed={SEED}") as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        return await play(session)


async def via_stdio(serve, backend) -> list:
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "mcpsim",
            "serve",
            "--stdio",
            "--seed",
            str(SEED),
            "--env",
            "frozen_lake",
            "--backend-transport",
            backend,
            "--port-range",
            port_range(1300 + 10 * BACKENDS.index(backend), 10),
        ],
    )
    async with Client(params, mode="legacy") as client:
        return await play(client)


FRONTS = {"streamable-http": via_streamable_http, "sse": via_sse, "stdio": via_stdio}


EVERY_PAIR = [(front, backend) for front in FRONTS for backend in BACKENDS]
COVERING = [("streamable-http", "stdio"), ("streamable-http", "http"), ("streamable-http", "sse"), ("sse", "http")]
COVERING += [("stdio", "sse")]
"""Every front and every backend at least once, the stdio front (a `serve --stdio` process per run) once: what
`make test` runs; `make stress` runs all nine pairs (tests/conftest.py FIRST_VARIANT_ONLY)."""


@pytest.mark.parametrize("pairs", [COVERING, EVERY_PAIR], ids=["covering", "all"])
async def test_all_front_back_pairs_give_the_same_trajectory(servers, pairs):
    results = {}
    for front, backend in pairs:
        results[(front, backend)] = await FRONTS[front](servers[backend], backend)
    reference = results[("streamable-http", "stdio")]
    assert reference[1][1]["mcpsim"]["step"] == 1
    for pair, trace in results.items():
        assert trace == reference, f"{pair} differs"
    for serve in servers.values():
        deadline = time.monotonic() + 5
        while serve.get("/api/instances").json() and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        assert serve.get("/api/instances").json() == []


async def test_dropping_the_sse_stream_ends_the_instance(servers):
    serve = servers["stdio"]
    async with httpx.AsyncClient(timeout=30) as http, http.stream("GET", f"{serve.url}/sse?seed=2") as events:
        lines = events.aiter_lines()
        async for line in lines:
            if line.startswith("data: /messages/"):
                endpoint = line.removeprefix("data: ")
                break
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        assert (await http.post(serve.url + endpoint, json=init)).status_code == 202
        # half a message, then a valid one: the first gets a parse error on the stream, the second an answer
        bad = await http.post(
            serve.url + endpoint,
            content=b'{"jsonrpc": "2.0", "id": 2, "meth',
            headers={"content-type": "application/json"},
        )
        assert bad.status_code == 400
        await http.post(serve.url + endpoint, json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
        seen = []
        async for line in lines:
            if line.startswith("data: {"):
                seen.append(json.loads(line.removeprefix("data: ")))
                if any(item.get("id") == 3 for item in seen):
                    break
        assert seen[0]["id"] == 1 and "serverInfo" in seen[0]["result"]
        assert {"id": seen[1]["id"], "code": seen[1]["error"]["code"]} == {"id": None, "code": -32700}
        assert seen[2]["result"]["tools"][0]["name"] == "lake_move"
        assert len(serve.get("/api/instances").json()) == 1
    deadline = time.monotonic() + 5
    while serve.get("/api/instances").json():
        assert time.monotonic() < deadline, "instance outlived its dropped SSE stream"
        await anyio.sleep(0.05)


def test_closing_stdin_ends_the_stdio_front_and_its_instance():
    process = subprocess.Popen(
        [sys.executable, "-m", "mcpsim", "serve", "--stdio", "--seed", "4", "--env", "frozen_lake"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    process.stdin.write((json.dumps(init) + "\n").encode())
    process.stdin.write(b'{"jsonrpc": "2.0", "id": 2, "method"\n')  # invalid JSON
    process.stdin.write(b'{"jsonrpc": "2.0", "id": 3, "method": "tools/list"}\n')
    process.stdin.flush()
    replies = [json.loads(process.stdout.readline()) for _ in range(3)]
    assert replies[0]["id"] == 1 and replies[0]["result"]["serverInfo"]["name"] == "frozen_lake"
    assert replies[1]["id"] is None and replies[1]["error"]["code"] == -32700
    assert replies[2]["id"] == 3 and replies[2]["result"]["tools"][0]["name"] == "lake_move"
    import psutil

    descendants = {p.pid: p.create_time() for p in psutil.Process(process.pid).children(recursive=True)}
    assert descendants
    process.stdin.close()
    assert process.wait(15) == 0
    assert not survivors(descendants)


async def test_invalid_json_on_mcp_is_a_parse_error_and_other_sessions_go_on(servers):
    serve = servers["stdio"]
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    async with Client(f"{serve.mcp}?seed=5", mode="legacy") as other:
        fresh = HTTP.post(serve.mcp, content=b'{"jsonrpc": "2.0", "id": 1, "method": "initi', headers=headers)
        assert fresh.status_code == 400 and fresh.json()["error"]["code"] == -32700
        listing = serve.get("/api/instances").json()
        (item,) = [i for i in listing if i["seed"] == 5]
        broken = HTTP.post(serve.mcp, content=b"{not json", headers={**headers, "mcp-session-id": item["session_id"]})
        assert broken.status_code == 400 and broken.json()["error"]["code"] == -32700
        no_type = HTTP.post(serve.mcp, content=b"{}", headers={"accept": headers["accept"]})
        assert no_type.status_code == 415 and "Content-Type" in no_type.json()["error"]["message"]
        result = await other.call_tool("lake_move", {"action": "RIGHT"})
        assert result.meta["mcpsim"]["step"] == 1


async def test_json_response_mode(tmp_path):
    serve = start_serve(tmp_path, "--env", "frozen_lake", "--json-response")
    try:
        async with Client(f"{serve.mcp}?seed=3", mode="legacy") as client:
            result = await client.call_tool("lake_move", {"action": "RIGHT"})
            assert result.meta["mcpsim"]["step"] == 1
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        response = HTTP.post(
            f"{serve.mcp}?seed=1", json=init, headers={"accept": "application/json, text/event-stream"}
        )
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["result"]["serverInfo"]["name"] == "frozen_lake"
    finally:
        serve.stop()
        assert not survivors(serve.seen_descendants)
