"""Properties every shipped env has, each env run standalone over stdio with the official client."""

import socket
import subprocess
import sys
import time

import anyio
import pytest
from mcp import Client
from mcp.client.sse import sse_client

from helpers.envs import env_client, step_record, texts
from mcpsim.proc import free_port

ENVS = {
    "frozen_lake": ("lake_move", ["RIGHT", "DOWN", "DOWN", "RIGHT", "UP", "LEFT", "DOWN", "RIGHT"]),
    "taxi": ("taxi_move", ["NORTH", "WEST", "SOUTH", "PICKUP", "EAST", "DROPOFF", "SOUTH", "EAST"]),
    "lunar_lander": ("lander_action", ["FIRE_MAIN", "FIRE_LEFT", "NOTHING", "FIRE_RIGHT"] * 3),
}
VALID = {
    "frozen_lake": "LEFT, DOWN, RIGHT, UP",
    "taxi": "SOUTH, NORTH, EAST, WEST, PICKUP, DROPOFF",
    "lunar_lander": "NOTHING, FIRE_LEFT, FIRE_MAIN, FIRE_RIGHT",
}


async def play(module: str, seed: int, actions: list[str]) -> list:
    tool = ENVS[module][0]
    async with env_client(module, seed) as client:
        trace: list = [(await client.read_resource("game://initial_state")).contents[0].text]
        for action in actions:
            trace.append(step_record(await client.call_tool(tool, {"action": action})))
    return trace


@pytest.mark.parametrize("module", sorted(ENVS))
async def test_same_seed_and_actions_give_identical_observations_and_rewards(module):
    actions = ENVS[module][1]
    first, again, other = await play(module, 7, actions), await play(module, 7, actions), await play(module, 8, actions)
    assert first == again
    assert first != other, "a different seed should give a different episode"
    metas = [step[1]["mcpsim"] for step in first[1:] if not step[2]]
    assert metas and all(set(m) == {"reward", "terminated", "truncated", "step"} for m in metas)
    assert all("reward" not in "".join(str(b[1]) for b in step[0]).lower() for step in first[1:])


@pytest.mark.parametrize("module", sorted(ENVS))
async def test_bad_action_is_a_tool_error_listing_the_valid_actions(module):
    tool = ENVS[module][0]
    async with env_client(module, 1) as client:
        result = await client.call_tool(tool, {"action": "TELEPORT"})
        assert result.is_error
        assert f"Invalid action 'TELEPORT'. Valid actions: {VALID[module]}." in texts(result)
        assert result.meta["mcpsim"]["step"] == 0
        listed = (await client.list_tools()).tools
        assert [t.name for t in listed] == [tool]
        assert listed[0].input_schema["properties"]["action"]["enum"] == VALID[module].split(", ")


@pytest.mark.parametrize("module", sorted(ENVS))
async def test_truncation_at_max_steps_then_moves_are_errors(module):
    tool, actions = ENVS[module]
    async with env_client(module, 5, '{"max_steps": 2, "images": false}') as client:
        first = await client.call_tool(tool, {"action": actions[0]})
        second = await client.call_tool(tool, {"action": actions[0]})
        assert first.meta["mcpsim"]["truncated"] is False
        assert second.meta["mcpsim"]["truncated"] or second.meta["mcpsim"]["terminated"]
        after = await client.call_tool(tool, {"action": actions[0]})
        assert after.is_error and "no more moves are accepted" in texts(after)


@pytest.mark.parametrize(("module", "transport"), [("taxi", "sse"), ("lunar_lander", "http")])
async def test_standalone_http_and_sse_transports(module, transport, tmp_path):
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    argv = [sys.executable, "-m", f"mcpsim.envs.{module}", "--seed", "3", "--transport", transport, "--port", str(port)]
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                await anyio.sleep(0.1)
        target = sse_client(f"{base}/sse") if transport == "sse" else f"{base}/mcp"
        tool, actions = ENVS[module]
        async with Client(target, mode="legacy") as client:
            result = await client.call_tool(tool, {"action": actions[0]})
            assert not result.is_error and result.meta["mcpsim"]["step"] == 1
            assert result == (await play_one(module, 3, actions[0]))
    finally:
        process.terminate()
        process.wait(15)


async def play_one(module: str, seed: int, action: str):
    async with env_client(module, seed) as client:
        return await client.call_tool(ENVS[module][0], {"action": action})
