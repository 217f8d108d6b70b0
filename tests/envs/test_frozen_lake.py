"""The FrozenLake production server on its own (no mcpsim in between), over stdio with the official client."""

import sys

import pytest
from mcp import Client, StdioServerParameters

from mcpsim.envs.frozen_lake import SPEC
from mcpsim.envs.gym_server import Episode


def board(seed: int, **config) -> tuple[str, ...]:
    text = SPEC.render_observation(Episode(SPEC, seed, config))[0].text
    return tuple(text.split("\n")[1:-1])


def test_map_depends_on_the_seed_and_only_on_it():
    boards = [board(seed) for seed in range(40)]
    assert boards == [board(seed) for seed in range(40)]
    # 4x4 maps collide now and then (few holes are likely), but the seed must drive the map
    assert len(set(boards)) >= 25


def test_map_size_config():
    rows = board(3, map_size=8)
    assert len(rows) == 8 and all(len(row) == 8 for row in rows)
    with pytest.raises(ValueError, match="map_size"):
        board(3, map_size=1)


def stdio_client(seed: int, config: str | None = None) -> Client:
    env = {"MCPSIM_CONFIG": config} if config else None
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcpsim.envs.frozen_lake", "--seed", str(seed)], env=env
    )
    return Client(params, mode="legacy")


async def play(seed: int, actions: list[str]) -> list:
    trace = []
    async with stdio_client(seed) as client:
        trace.append((await client.read_resource("game://initial_state")).contents[0].text)
        for action in actions:
            result = await client.call_tool("lake_move", {"action": action})
            trace.append((result.content[0].text, result.meta, result.is_error))
    return trace


async def test_seed_determinism_and_meta_shape():
    actions = ["RIGHT", "RIGHT", "DOWN", "DOWN", "DOWN", "RIGHT", "UP", "LEFT"]
    first, second = await play(13, actions), await play(13, actions)
    assert first == second
    _, meta, _ = first[1]
    assert set(meta["mcpsim"]) == {"reward", "terminated", "truncated", "step"}
    assert meta["mcpsim"]["step"] == 1
    # the reward never appears in the text the model sees
    assert all("reward" not in step[0].lower() for step in first[1:])


async def test_bad_action_lists_the_valid_ones_and_does_not_count_as_a_step():
    async with stdio_client(1) as client:
        result = await client.call_tool("lake_move", {"action": "JUMP"})
        assert result.is_error
        assert "Valid actions: LEFT, DOWN, RIGHT, UP" in result.content[0].text
        ok = await client.call_tool("lake_move", {"action": "right"})  # case-insensitive
        assert not ok.is_error and ok.meta["mcpsim"]["step"] == 1


async def test_goal_terminates_with_reward_and_later_moves_are_errors():
    # seed 2's map is @FHF/FFFF/FFFF/FFFG: a safe path is DOWN x3, RIGHT x3
    assert board(2) == ("@FHF", "FFFF", "FFFF", "FFFG")
    async with stdio_client(2) as client:
        for action in ["DOWN", "DOWN", "DOWN", "RIGHT", "RIGHT"]:
            result = await client.call_tool("lake_move", {"action": action})
            assert result.meta["mcpsim"]["terminated"] is False
        result = await client.call_tool("lake_move", {"action": "RIGHT"})
        assert result.meta["mcpsim"] == {"reward": 1.0, "terminated": True, "truncated": False, "step": 6}
        after = await client.call_tool("lake_move", {"action": "LEFT"})
        assert after.is_error and "terminated at step 6" in after.content[0].text


async def test_truncation_after_max_steps_from_config():
    async with stdio_client(2, '{"max_steps": 3}') as client:
        metas = [(await client.call_tool("lake_move", {"action": "LEFT"})).meta["mcpsim"] for _ in range(3)]
    assert [m["truncated"] for m in metas] == [False, False, True]
