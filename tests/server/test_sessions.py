"""`/mcp` sessions against FrozenLake through a real `mcpsim serve`: isolation, seeds, concurrency, cleanup."""

import time

import anyio
import psutil
import pytest
from mcp import Client

from helpers.http import HTTP
from helpers.mcp_client import initial_map, lake, move
from helpers.procs import running


async def test_same_seed_same_map_independent_state(frozen_lake_server):
    async with lake(frozen_lake_server.url, 11) as a, lake(frozen_lake_server.url, 11) as b:
        assert await initial_map(a) == await initial_map(b)
        text_a, meta_a, _ = await move(a, "RIGHT")
        assert meta_a["step"] == 1
        # b has not moved: its first move is also step 1, from the start cell
        text_b, meta_b, _ = await move(b, "DOWN")
        assert meta_b["step"] == 1
        assert "row 0, column 1" in text_a
        assert "row 1, column 0" in text_b
        listing = frozen_lake_server.get("/api/instances").json()
        pids = {item["pid"] for item in listing if item["seed"] == 11}
        assert len(pids) == 2, "two sessions with one seed must be two processes"


async def test_each_session_gets_the_map_of_its_seed(frozen_lake_server):
    from mcpsim.envs.frozen_lake import SPEC
    from mcpsim.envs.gym_server import Episode

    async def fetch(seed: int, maps: dict) -> None:
        async with lake(frozen_lake_server.url, seed) as client:
            maps[seed] = await initial_map(client)

    maps: dict[int, str] = {}
    async with anyio.create_task_group() as tg:
        for seed in (1, 2, 4, 5):
            tg.start_soon(fetch, seed, maps)
    for seed, text in maps.items():
        expected = SPEC.render_observation(Episode(SPEC, seed))[0].text
        assert text == expected
    assert len(set(maps.values())) == 4


async def test_same_seed_reproduces_across_sessions(frozen_lake_server):
    actions = ["RIGHT", "DOWN", "DOWN", "RIGHT", "DOWN", "RIGHT"]
    runs = []
    for _ in range(2):
        async with lake(frozen_lake_server.url, 21) as client:
            trace = [await initial_map(client)]
            for action in actions:
                text, meta, is_error = await move(client, action)
                trace.append((text, meta, is_error))
                if is_error or meta.get("terminated"):
                    break
            runs.append(trace)
    assert runs[0] == runs[1]


async def test_map_size_from_config(frozen_lake_server):
    async with lake(frozen_lake_server.url, 3, '{"map_size": 8}') as client:
        rows = (await initial_map(client)).split("\n")[1:9]
    assert len(rows) == 8 and all(len(row) == 8 for row in rows)


async def test_no_seed_gets_a_random_one_reported_in_the_api(frozen_lake_server):
    async with lake(frozen_lake_server.url) as client:
        await move(client, "LEFT")
        listing = frozen_lake_server.get("/api/instances").json()
        assert len(listing) == 1
        assert isinstance(listing[0]["seed"], int)
        assert listing[0]["session_id"]
        assert listing[0]["state"] == "ready"


async def test_thirty_two_concurrent_sessions_twenty_steps_then_nothing_left(frozen_lake_server):
    actions = ["RIGHT", "DOWN", "LEFT", "UP"]

    async def episode(seed: int, results: dict) -> None:
        async with lake(frozen_lake_server.url, seed) as client:
            first = await initial_map(client)
            steps = 0
            for i in range(20):
                _, meta, is_error = await move(client, actions[(seed + i) % 4])
                if is_error:  # the episode ended earlier: a tool error, not a silent success
                    break
                steps += 1
                assert meta["step"] == steps
                if meta["terminated"] or meta["truncated"]:
                    break
            results[seed] = (first, steps)

    from mcpsim.envs.frozen_lake import SPEC
    from mcpsim.envs.gym_server import Episode

    results: dict = {}
    async with anyio.create_task_group() as tg:
        for seed in range(32):
            tg.start_soon(episode, seed, results)
    assert len(results) == 32
    for seed, (first, _) in results.items():
        assert first == SPEC.render_observation(Episode(SPEC, seed))[0].text
    deadline = time.monotonic() + 5
    while frozen_lake_server.instance_processes() and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    assert frozen_lake_server.instance_processes() == []
    assert frozen_lake_server.get("/api/instances").json() == []


async def test_moves_after_the_episode_ended_are_tool_errors(frozen_lake_server):
    async with lake(frozen_lake_server.url, 4) as client:
        # walk until the episode ends (hole or goal), then one more move
        for _ in range(100):
            _, meta, is_error = await move(client, "DOWN")
            if meta.get("terminated") or meta.get("truncated"):
                break
        text, meta, is_error = await move(client, "DOWN")
        assert is_error and "no more moves are accepted" in text
        bad, _, bad_error = await move(client, "JUMP")
        assert bad_error and "LEFT, DOWN, RIGHT, UP" in bad


async def test_delete_ends_the_process_within_two_seconds(frozen_lake_server):
    client = lake(frozen_lake_server.url, 8)
    async with client:
        await move(client, "RIGHT")
        (item,) = [i for i in frozen_lake_server.get("/api/instances").json() if i["seed"] == 8]
        pid = item["pid"]
        assert psutil.pid_exists(pid)
        started = time.monotonic()
    # leaving the client sends DELETE /mcp with the session id
    while running(pid):
        assert time.monotonic() - started < 2.0, "instance process still alive 2 s after DELETE"
        await anyio.sleep(0.02)


async def test_default_client_mode_speaks_2026_through_discover(frozen_lake_server):
    async with Client(f"{frozen_lake_server.mcp}?seed=9") as client:  # mode="auto": probes server/discover first
        assert client.protocol_version == "2026-07-28"
        result = await client.call_tool("lake_move", {"action": "RIGHT"})
        assert result.meta["mcpsim"]["step"] == 1 and len(result.meta["mcpsim/handle"]) == 32


async def test_unknown_session_id_is_404_with_a_json_rpc_error(frozen_lake_server):
    response = HTTP.post(
        frozen_lake_server.mcp,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"mcp-session-id": "deadbeef", "accept": "application/json, text/event-stream"},
    )
    assert response.status_code == 404
    assert "Session not found" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("seed=abc", "invalid seed"),
        ("seed=-1", "invalid seed"),
        ("seed=1e3", "invalid seed"),
        ("seed=99999999999999999999", "invalid seed"),
        ("config=%7Bnot", "invalid config"),
        ("config=%5B1%5D", "must be a JSON object"),
    ],
)
async def test_malformed_seed_or_config_is_a_400_naming_the_cause(frozen_lake_server, query, needle):
    before = {item["id"] for item in frozen_lake_server.get("/api/instances").json()}
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    response = HTTP.post(
        f"{frozen_lake_server.mcp}?{query}", json=body, headers={"accept": "application/json, text/event-stream"}
    )
    assert response.status_code == 400
    assert needle in response.json()["error"]["message"]
    assert {item["id"] for item in frozen_lake_server.get("/api/instances").json()} <= before


@pytest.mark.parametrize(
    ("request_id", "method", "code"), [({"a": 1}, "tools/list", -32600), ([1], "server/discover", -32601)]
)
def test_a_first_request_with_an_id_that_is_no_json_rpc_id_gets_a_400_not_a_500(
    frozen_lake_server, request_id, method, code
):
    """The error answer used to carry the id as sent, which no JSON-RPC error can: building it failed with a 500."""
    response = HTTP.post(
        frozen_lake_server.mcp,
        json={"jsonrpc": "2.0", "id": request_id, "method": method},
        headers={"accept": "application/json, text/event-stream"},
    )
    assert response.status_code == 400
    assert response.json()["id"] is None and response.json()["error"]["code"] == code
