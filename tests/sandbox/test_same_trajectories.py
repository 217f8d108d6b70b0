"""The sandbox changes nothing a policy sees: the same seeds give the same steps, images included, with and
without `--sandbox strict`, spawned or forked, Python or Node."""

import shutil

import anyio
import pytest
from mcp import Client

from helpers.envs import step_record
from helpers.serve import REPO

JS_SERVER = REPO / "examples" / "js_frozen_lake"
LAKE = ("lake_move", ["RIGHT", "DOWN", "RIGHT", "DOWN", "LEFT", "DOWN", "RIGHT", "RIGHT"])
CASES = {
    "frozen_lake": (("--env", "frozen_lake", "--no-fork-server"), LAKE),
    "frozen_lake-fork": (("--env", "frozen_lake", "--fork-server"), LAKE),
    "taxi": (("--env", "taxi"), ("taxi_move", ["NORTH", "WEST", "SOUTH", "PICKUP", "EAST", "DROPOFF", "SOUTH"])),
    "lunar_lander": (("--env", "lunar_lander"), ("lander_action", ["FIRE_MAIN", "FIRE_LEFT", "NOTHING"] * 2)),
    "js": (("--server", f"node {JS_SERVER / 'server.js'} --seed {{seed}}"), LAKE),
}


async def trajectories(mcp_url: str, tool: str, actions: list[str], seeds: range) -> dict[int, list]:
    out: dict[int, list] = {}

    async def one(seed: int) -> None:
        async with Client(f"{mcp_url}?seed={seed}", mode="legacy") as client:
            out[seed] = [step_record(await client.call_tool(tool, {"action": action})) for action in actions]

    async with anyio.create_task_group() as tg:
        for seed in seeds:
            tg.start_soon(one, seed)
    return out


@pytest.mark.parametrize("case", list(CASES))
async def test_same_seeded_trajectories_with_and_without_the_sandbox(serve_factory, case):
    flags, (tool, actions) = CASES[case]
    if case == "js" and (shutil.which("node") is None or not (JS_SERVER / "node_modules").exists()):
        pytest.skip("node or the example's node_modules (make node-deps) is missing")
    seeds = range(3)
    plain = serve_factory(*flags)
    expected = await trajectories(plain.mcp, tool, actions, seeds)
    plain.stop()
    boxed = serve_factory(*flags, "--sandbox", "strict")
    got = await trajectories(boxed.mcp, tool, actions, seeds)
    assert got == expected
    assert "sandbox strict" in boxed.log()
